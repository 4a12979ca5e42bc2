"""The mall's member centre: balance and top-up, points and their redemption, level and benefits, coupons, orders,
after-sales requests, a copy of one's personal data and the deletion request.

Guarantees:
- Everything the member does or reads about their account goes through the public JSON API with their session
  (cloud/mall/static/member.js): `GET /members/{id}`, `POST /members/{id}/top-ups` (the simulated wallet; the
  balance moves only on the provider's signed notification, so the page shows the top-up pending until then),
  `GET /points/offers`, `POST /members/{id}/points/exchange`, `GET /members/{id}/coupons`,
  `GET /members/{id}/orders`, `GET|POST /orders/{id}/after-sales`, `GET /members/{id}/personal-data`,
  `POST /members/{id}/erasure` (the last three added for this page: cloud/http/routes/member_self.py).
- The level ladder and a level's benefits are read from the chain's rule book and catalogue (the same book the
  till and the cart price with), never written into the page by hand: `benefits(...)` is pure and unit-tested.
- `/mall/qr.svg?text=` draws the wallet's payment code as a QR (no third-party service sees the code).
"""
from __future__ import annotations

from starlette.responses import Response

from actors.member_ledger import LEVELS
from cloud.http.problems import HTTPProblem
from cloud.mall import i18n
from cloud.mall.groups import qr_svg
from cloud.mall.pages import lang_of, mall_page, member_of

QR_TEXT_MAX_CHARS = 300  # a wallet's code URL is far shorter; nothing longer is drawn
EXAMPLES_MAX = 4
LEVEL_ORDER = ("regular", "silver", "gold", "platinum")


def ladder() -> list[dict]:
    """The levels from the lowest, each with the rolling 12-month spend (fen) that reaches it. Pure."""
    spend = dict(LEVELS)
    return [{"level": lvl, "from_fen": spend.get(lvl, 0)} for lvl in LEVEL_ORDER]


def benefits(level: str, rule_data: dict, catalogue) -> dict:
    """What `level` gets beyond the list price: member prices (how many products, a few examples with both prices)
    and the rule book's member-only deals for the level (name, and how much off). Pure."""
    priced = []
    for product in catalogue.by_sku.values():
        own = product.price_for(level)
        if "online" in product.channels and own < product.price_fen:
            priced.append({"sku": product.sku, "name": product.name, "price_fen": product.price_fen, "member_fen": own})
    priced.sort(key=lambda p: (p["member_fen"] - p["price_fen"], p["sku"]))  # the biggest savings first
    deals = []
    for rule in rule_data.get("rules", []):
        if level in rule.get("member_levels", ()):
            deals.append({"id": rule["id"], "name": rule.get("name", rule["id"]), "skus": len(rule.get("skus", [])),
                          "amount_off_fen": rule.get("amount_off_fen"), "percent_off_bp": rule.get("percent_off_bp")})
    return {"level": level, "member_prices": len(priced), "examples": priced[:EXAMPLES_MAX], "deals": deals}


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def centre(request):
        member = await member_of(request, services)
        level = "regular"
        if member is not None:
            level = (await services.members.view(member))["level"] or "regular"
        return mall_page(request, services, "member_centre.html", {
            "signed_in": member is not None, "level": level, "ladder": ladder(),
            "benefits": benefits(level, cloud.world.rule_data, cloud.world.catalogue)},
            title=i18n.words(lang_of(request))["mc_title"])

    async def qr(request):
        text = request.query_params.get("text", "")
        if not text or len(text) > QR_TEXT_MAX_CHARS:
            raise HTTPProblem(422, f"text: 1-{QR_TEXT_MAX_CHARS} characters to draw as a QR code")
        return Response(qr_svg(text), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    return [("/mall/me", centre, ["GET"]), ("/mall/qr.svg", qr, ["GET"])]
