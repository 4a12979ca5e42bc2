"""/openapi.json's entries for the mall (issue 20): the public cart price (`POST /cart/price`,
cloud/http/routes/cart.py) with its answer described field by field, and the mall's pages (`/mall...`,
cloud/mall/), which answer HTML. Merged into the document by `cloud/http/openapi.py` (which passes its `_op`, so
the styles stay one); the answer schema and media types join `cloud.http.openapi_answers`' tables here."""
from __future__ import annotations

from collections.abc import Callable

from cloud.http import openapi_answers
from cloud.http.openapi_answers import BOOL, INT, STR, TIME, array, nullable, obj

CART_LINE = obj(["sku", "name", "qty", "weighed", "list_fen", "amount_fen"], sku=STR, name=STR, qty=INT,
                weighed=BOOL, unit_price_fen=INT, list_fen=INT, amount_fen=INT, rules=array(STR))
CART_PRICE = obj(  # cloud/services/cart_preview.py price_cart + preview
    ["store_id", "fulfilment", "lines", "subtotal_fen", "discount_fen", "applied", "almost", "total_fen", "slots"],
    store_id=STR, fulfilment={"type": "string", "enum": ["pickup", "delivery"]}, rule_book_version=INT,
    lines=array(CART_LINE),
    gifts=array(obj(["rule_id", "sku", "qty"], rule_id=STR, sku=STR, qty=INT, value_fen=INT)),
    subtotal_fen=INT, discount_fen=INT, goods_fen=INT, total_fen=INT,
    applied=array(obj(["rule_id", "name", "saving_fen"], rule_id=STR, type=STR, name=STR, saving_fen=INT,
                      skus=array(STR))),
    almost=array(obj(["rule_id", "missing_fen", "message"], rule_id=STR, name=STR, missing_fen=INT, message=STR)),
    coupons_used=array(STR),
    coupons=array(obj(["code", "rule_id", "used"], code=STR, rule_id=STR, used=BOOL)),
    delivery=nullable(obj(["fee_fen", "free_from_fen"], fee_fen=INT, standard_fee_fen=INT, free_from_fen=INT,
                          missing_for_free_fen=INT)),
    member_level=nullable(STR), priced_at=TIME,
    slots=array(obj(["start", "end", "start_ms"], start=TIME, end=TIME, start_ms=INT, kind=STR)))
CART_REQUEST = obj(["items"], items=array(obj(["sku", "qty"], sku=STR, qty=INT)),
                   fulfilment={"type": "string", "enum": ["pickup", "delivery"]}, store_id=STR,
                   location=obj(["lat", "lon"], lat={"type": "number"}, lon={"type": "number"}), coupons=array(STR))

# (path, summary, path parameters): each a page, text/html, Chinese first (?lang=en), no data a customer may not see
PAGES: list[tuple[str, str, list[str]]] = [
    ("/mall", "The mall's home: shelves, scenes, promotion zones, flash sales", []),
    ("/mall/shelves/{shelf}", "A shelf (vegetables, fruit, meat, seafood, eggs_dairy, packed)", ["shelf"]),
    ("/mall/scenes/{scene}", "A scene's products (cloud/data/mall_scenes.json)", ["scene"]),
    ("/mall/search", "Search by name, PLU or initials (?q=)", []),
    ("/mall/products/{sku}", "A product: price per kg or piece, member price, availability at the chosen store",
     ["sku"]),
    ("/mall/stalls/{stall_id}", "A market stall's own shop: its products sold online (issue 21.6)", ["stall_id"]),
    ("/mall/stores", "Choose a store, nearest first with ?lat=&lon=", []),
    ("/mall/stores/{store_id}/choose", "Remember the chosen store (cookie) and go back (303)", ["store_id"]),
    ("/mall/signin", "Sign in by phone and one-time code (through POST /auth/codes and /auth/sessions)", []),
    ("/mall/cart", "The cart (kept in the browser; priced by POST /cart/price)", []),
    ("/mall/checkout", "Checkout: pickup or delivery, slot, coupons, payment (through POST /orders)", []),
    ("/mall/orders", "The signed-in customer's orders (read through the API with their session)", []),
    ("/mall/orders/{order_id}", "An order: pickup code as a QR, the live timeline, the rider on a map", ["order_id"]),
    ("/mall/static/{name}", "The mall's CSS and JS (served by the cloud; no CDN)", ["name"]),
    ("/mall/flash", "Flash sales running now and coming up", []),
    ("/mall/flash/{sale_id}", "A flash sale: countdown, units left, buy (POST /flash-sales/{id}/orders, one "
                              "Idempotency-Key per attempt, reused on retry)", ["sale_id"]),
    ("/mall/group-buys", "Group-buy deals", []),
    ("/mall/group-buys/{rule_id}", "A group-buy deal: open a group", ["rule_id"]),
    ("/mall/groups/{group_id}", "A group: share link and QR, countdown, joined / needed, join, the outcome",
     ["group_id"]),
    ("/mall/me", "The member centre: balance and top-up, points, level, coupons, orders, after-sales, data", []),
    ("/mall/qr.svg", "A QR code of ?text= as SVG (a wallet's pay link, a group's share link)", []),
]
HTML = {"type": "string", "description": "an HTML page of the mall (a sentence and the way home when it cannot be "
                                         "shown: never a raw problem body)"}


def mall_paths(op: Callable[..., dict]) -> dict:
    paths: dict[str, dict] = {"/cart/price": {"post": op(
        "The cart's price before ordering, exactly as POST /orders would price it now (catalogue, promotion book, "
        "the member's level and their wallet's coupons with a session), each saving explained, near misses, the "
        "delivery fee and free-delivery threshold of the store that would deliver, and the next slots. Nothing is "
        "held: the order's own pricing counts",
        ("200", "{store_id, fulfilment, lines, subtotal_fen, discount_fen, applied, almost, delivery, total_fen, "
                "slots, coupons}"),
        {"401": "an Authorization that is not a valid session, or coupons named without one",
         "404": "a coupon code that is not the member's", "409": "a coupon that cannot be used now (the code and "
         "why); no store delivers to the address", "422": "a field is wrong (the detail names it)"},
        body="CartRequest")}}
    for path, summary, params in PAGES:
        paths[path] = {"get": op(summary, ("200", "text/html"), {"404": "no such page (an HTML page says so)"},
                                 params=params)}
        openapi_answers.MEDIA[(path, "get")] = ("text/html", HTML)
    openapi_answers.MEDIA[("/mall/static/{name}", "get")] = (
        "text/css", {"type": "string", "description": "a stylesheet (text/css) or script (text/javascript)"})
    openapi_answers.MEDIA[("/mall/qr.svg", "get")] = ("image/svg+xml", {"type": "string", "description": "an SVG"})
    openapi_answers.ANSWERS[("/cart/price", "post")] = CART_PRICE
    return paths
