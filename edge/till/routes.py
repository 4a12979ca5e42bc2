"""The till page's HTTP shell, mounted on the lane app (`edge/lanes.py`): the page, its assets, its live events, and
the few endpoints that answer the page with server-rendered HTML fragments.

Guarantees:
- Every change goes through the same store actor and the same lane operations as the JSON lane API (scan,
  weigh, member, void, pay), so the page sells exactly as the lane API does, online or offline; errors come back
  as application/problem+json whose `detail` is said in the page's language, with a stable `code` and the core's
  English sentence (`detail_en`) beside it (edge/till/page_errors.py); the JSON lane API's own answers are unchanged.
- A box provisioned with cashiers refuses the page's scans, weighings, cart edits, member lookups and voids (403)
  until a cashier is signed in at the lane, as it refuses money (edge/till/counter_routes.py `require_cashier`).
- Words come from the gettext catalogues (edge/till/i18n.py); the chain's category and level ids are said through
  them; the member strip counts the member's coupons from the box's coupon snapshot; weighed lines show jin and the
  price per jin where the store's config says `show_jin`.
- The page never holds state the box does not: the cart it shows is re-rendered from the actor's cart after each
  action and pushed by server-sent events on every change (a serial scanner's scans appear too).
- The connection banner is read from the box itself (the actor's online flag, the outbox) and needs no network.
"""
from __future__ import annotations

import asyncio
import html
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from edge import coupons, stored_value
from edge.core.outcome import Refused
from edge.core.returns import DRAWER_KICK
from edge.till import counter_routes, i18n
from edge.till.page_errors import localising
from edge.till.view import produce_keys, qr_svg, scale_view, status_view
from protocol.digits import is_whole_number
from protocol.messages import check_lane
from protocol.schema import record, require

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
TEMPLATES.env.filters.update(yuan=i18n.yuan, kg=i18n.kg, jin=i18n.jin, per_jin=i18n.per_jin)
TEMPLATES.env.globals.update(cat_name=i18n.category, level=i18n.level)  # the chain's ids, said in the page's language
TICK_S = 0.2  # how often a page's event stream looks at its lane (a cashier sees a serial scan within this)
MAX_STREAMS = 16  # a box serves a handful of lanes; more open pages than this is a leak, not a store
LANG_COOKIE = "till_lang"


@record
class LineBody:
    sku: str
    qty: int | None = None  # None: delete the line

    def __post_init__(self) -> None:
        require(self.qty is None or 0 <= self.qty <= 9_999, "qty: 0..9999")


def lang_of(request: Request) -> str:
    return i18n.lang_of(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))


async def oldest_unsynced_sale_ms(box) -> int | None:
    async with box.store_db.reader.execute("select min(created_ms) from outbox where kind = 'sale.committed'") as cur:
        row = await cur.fetchone()
    return row[0] if row and row[0] is not None else None


async def status(box) -> dict:
    return status_view(bool(box.actor and box.actor.online), await box.store_db.outbox_depth(),
                       await oldest_unsynced_sale_ms(box), box.clock.now_ms())


def scale_now(box) -> dict:
    scale = box.scale
    if scale is None:
        return scale_view("absent", None, 0)
    return scale_view(scale.state, scale.last[0] if scale.last else None, scale.capacity_g)


def member_prices(box, cart: dict) -> set[str]:
    """The SKUs of the cart whose member price (for the identified member's level) is below the list price."""
    level = (cart.get("member") or {}).get("level")
    catalogue = box.actor.catalogue
    if not level or catalogue is None:
        return set()
    return {line["sku"] for line in cart["lines"]
            if (p := catalogue.by_sku.get(line["sku"])) is not None and p.price_for(level) < p.price_fen}


def render(name: str, lang: str, **context) -> str:
    return TEMPLATES.get_template(name).render(w=i18n.words(lang), lang=lang, **context)


async def cart_html(box, lane: str, cart: dict, lang: str) -> str:
    """The cart fragment: its member strip counts the member's coupons from the box's coupon snapshot (the cart's
    own view carries none), and weighed lines show jin and the price per jin where the store configures it."""
    names = {r["rule_id"]: r["name"] for r in cart["applied_rules"]}
    member = cart.get("member") or {}
    coupons_n = len(await coupons.wallet_view(box, member["member_id"], box.clock.now_ms())) \
        if member.get("member_id") else 0
    return render("_cart.html", lang, lane=lane, cart=cart, rule_names=names, member_skus=member_prices(box, cart),
                  almost=[i18n.near_miss(m, lang) for m in cart["almost"]], coupons_n=coupons_n,
                  show_jin=bool(box.config.get("show_jin")), per_kg=per_kg_prices(box, cart))


def per_kg_prices(box, cart: dict) -> dict[str, int]:
    """sku -> list price per kg of the cart's weighed lines (what the jin price is worked out from)."""
    catalogue = box.actor.catalogue
    if catalogue is None:
        return {}
    return {line["sku"]: p.price_fen for line in cart["lines"]
            if "weight_g" in line and (p := catalogue.by_sku.get(line["sku"])) is not None}


def require_cashier_at(box, lane: str) -> None:
    """A box provisioned with cashiers takes no scan, weighing or cart edit at its till page until a cashier is
    signed in at the lane (edge/till/counter_routes.py: the same lock as for money)."""
    counter_routes.require_cashier(box, lane)


def routes(box, endpoint) -> list:
    """`endpoint`: the lane app's wrapper (body checks, problem+json errors: edge/lanes.py)."""
    actor = box.actor
    streams = {"open": 0}
    endpoint = localising(endpoint, lang_of)  # the page's refusals in its language (edge/till/page_errors.py)

    def fragment(fn, locked: bool = True):
        async def handle(request, body):
            lane = request.path_params["lane"]
            if locked:
                require_cashier_at(box, lane)
            cart = await fn(request, body, lane)
            return {"html": await cart_html(box, lane, cart, lang_of(request)), "lines": len(cart["lines"]),
                    "total_fen": cart["total_fen"]}
        return handle

    async def page(request: Request):
        lane = request.path_params["lane"]
        check_lane(lane)
        lang = lang_of(request)
        cart = await actor.ask("cart_view", lane=lane)
        response = TEMPLATES.TemplateResponse(request, "till.html", {
            "w": i18n.words(lang), "lang": lang, "lane": lane, "store_id": box.store_id,
            "cart_html": await cart_html(box, lane, cart, lang), "scale": scale_now(box), "status": await status(box),
            "produce": produce_keys(actor.catalogue.by_sku.values() if actor.catalogue else [])})
        if request.query_params.get("lang"):
            response.set_cookie(LANG_COOKIE, lang, samesite="strict")
        return response

    async def events(request: Request):
        lane = request.path_params["lane"]
        check_lane(lane)
        if streams["open"] >= MAX_STREAMS:
            return HTMLResponse("too many open till pages on this box", status_code=503)
        lang = lang_of(request)

        async def stream():
            streams["open"] += 1
            seen: dict[str, str] = {}
            try:
                while not await request.is_disconnected():
                    try:
                        cart = await cart_html(box, lane, await actor.ask("cart_view", lane=lane), lang)
                    except Refused as exc:  # no catalogue yet: said on the page, the stream goes on
                        cart = f"<p class='error'>{html.escape(str(exc))}</p>"
                    now = {"cart": cart, "scale": render("_scale.html", lang, scale=scale_now(box)),
                           "status": render("_status.html", lang, status=await status(box))}
                    for name, fragment_html in now.items():
                        if seen.get(name) != fragment_html:
                            seen[name] = fragment_html
                            yield f"event: {name}\ndata: {json.dumps(fragment_html)}\n\n"
                    if box.scale is not None and box.scale.codec.POLL and box.scale.serial is not None:
                        await box.scale.write(box.scale.codec.POLL)  # a polled scale answers with its reading
                    await asyncio.sleep(TICK_S)
            finally:
                streams["open"] -= 1
        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def scan(request, body, lane):
        if coupons.looks_like_code(body.code):  # a coupon goes to the cart as a coupon, as at the lane API
            return await coupons.scan(box, lane, body.code)  # the priced cart (edge/coupon_ops.py)
        return (await actor.ask("scan", lane=lane, code=body.code))["cart"]

    async def weigh(request, body, lane):
        if box.scale is None:
            raise Refused(409, "no scale configured on this box")
        grams = await box.scale.read_stable()
        return (await actor.ask("weighed", lane=lane, sku=body.sku, grams=grams))["cart"]

    async def member(request, body, lane):
        cart = await actor.ask("member", lane=lane, phone=body.phone, member_code=body.member_code)
        await coupons.snapshot(box, cart)
        return cart

    async def line(request, body, lane):
        index = int(request.path_params["index"]) if is_whole_number(request.path_params["index"], 9) else -1
        if body.qty is None:
            return await actor.ask("till_line", action="delete", lane=lane, index=index, sku=body.sku)
        return await actor.ask("till_line", action="set_qty", lane=lane, index=index, sku=body.sku, qty=body.qty)

    async def void(request, body, lane):
        voided = await coupons.void(box, lane)
        await counter_routes.note_void(box, lane, voided.get("voided_lines", 0))  # in the shift report
        return await actor.ask("cart_view", lane=lane)

    async def view(request, body, lane):
        return await actor.ask("cart_view", lane=lane)

    async def pay(request, body):
        lane, lang = request.path_params["lane"], lang_of(request)
        counter_routes.require_cashier(box, lane)  # a locked till page takes no money
        before = await actor.ask("cart_view", lane=lane)  # what the receipt lists: the cart as paid
        try:
            paid = await stored_value.pay(box, lane, body.method, body.tendered_fen)
        finally:
            await coupons.give_back(box)  # the sale's unused coupon holds, as the lane API does
        if body.method == "cash" and box.printer is not None:
            await box.printer.print(DRAWER_KICK)  # the drawer opens for the change
        link = paid.get("survey_url") or f"SALE:{paid['sale_id']}"
        # a serial scan between the look and the sale would make the listed lines wrong: then only the totals show
        lines_known = before["total_fen"] == paid["total_fen"]
        receipt = render("_receipt.html", lang, cart=before if lines_known else {**before, "lines": []}, paid=paid,
                         method=body.method, tendered=body.tendered_fen, qr=qr_svg(link),
                         survey=bool(paid.get("survey_url")), show_jin=bool(box.config.get("show_jin")),
                         per_kg=per_kg_prices(box, before))
        return {"html": receipt, **paid}

    from edge.lanes import MemberBody, PayBody, ScanBody, WeighBody  # the lane API's own bodies (no cycle at import)
    from edge.till import money_routes  # it renders with this module's helpers (no cycle at import)
    return [
        Mount("/till/static", StaticFiles(directory=str(HERE / "static")), name="till-static"),
        Route("/till/{lane}", page, methods=["GET"]),
        Route("/till/{lane}/events", events, methods=["GET"]),
        Route("/till/{lane}/cart", endpoint(fragment(view, locked=False)), methods=["GET"]),
        Route("/till/{lane}/cart", endpoint(fragment(void)), methods=["DELETE"]),
        Route("/till/{lane}/scan", endpoint(fragment(scan), ScanBody), methods=["POST"]),
        Route("/till/{lane}/weigh", endpoint(fragment(weigh), WeighBody), methods=["POST"]),
        Route("/till/{lane}/member", endpoint(fragment(member), MemberBody), methods=["POST"]),
        Route("/till/{lane}/lines/{index}", endpoint(fragment(line), LineBody), methods=["POST"]),
        Route("/till/{lane}/pay", endpoint(pay, PayBody), methods=["POST"]),
        *money_routes.mounted(box, endpoint),  # members and money: edge/till/money_routes.py
        *counter_routes.routes(box, endpoint),  # shifts, pickups, returns, store lists: edge/till/counter_routes.py
    ]
