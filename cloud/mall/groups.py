"""The mall's group buys: the list of group-buy deals, a deal's item page (open a group), and a group's own page
(the share link as a URL and an inline-SVG QR code, the countdown to the group's deadline, places taken and needed
with members masked, joining, paying the held order, and the outcome).

Guarantees:
- Opening, joining and paying are the public `POST /group-buys`, `POST /group-buys/{id}/join` and
  `POST /orders/{id}/pay` with the customer's session and an Idempotency-Key made once per attempt
  (cloud/mall/static/groups.js); the group page shows what the public share endpoint `GET /group-buys/{id}`
  answers (the same service call) and keeps reading it: members are only ever shown masked.
- The share link is this cloud's own `/mall/groups/{id}` (a QR of that URL); opening it signed out asks to sign in
  and comes back.
- Pure helpers (the deals of the rule book, pickup slots, the QR) are unit-tested without servers.
"""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import qrcode
import qrcode.image.svg

from cloud.mall import i18n, shelf
from cloud.mall.pages import lang_of, mall_error, mall_page, store_of
from cloud.services.verdicts import Refusal
from protocol.clock import parse_rfc3339

CN = timezone(timedelta(hours=8))  # the stores' clocks: pickup slots are in China time
SLOT_HOURS = (15, 10, 18)  # the pickup times offered, first the default (mid-afternoon: every store is open)
SLOT_DAYS = (1, 2)


def deals(rule_data: dict, catalogue) -> list[dict]:
    """The rule book's online group-buy rules, each with its products sold online. Pure."""
    out = []
    for rule in rule_data.get("rules", []):
        if rule.get("type") != "group_buy" or "online" not in rule.get("channels", ["online", "offline"]):
            continue
        products = [catalogue.by_sku[s] for s in rule.get("skus", [])
                    if s in catalogue.by_sku and "online" in catalogue.by_sku[s].channels]
        if products:
            out.append({"id": rule["id"], "name": rule.get("name", rule["id"]), "size": rule.get("group_size"),
                        "group_price_fen": rule.get("group_price_fen"), "window_h": rule.get("window_h"),
                        "products": [shelf.tile(p, None) for p in products]})
    return out


def pickup_slots(now_ms: int, opens: str = "07:00", closes: str = "22:00") -> list[str]:
    """Pickup times offered (RFC 3339, China time): the next days at SLOT_HOURS within the store's hours. Pure."""
    today = datetime.fromtimestamp(now_ms / 1000, CN).replace(hour=0, minute=0, second=0, microsecond=0)
    first, last = int(opens[:2]), int(closes[:2])
    return [(today + timedelta(days=d, hours=h)).isoformat() for d in SLOT_DAYS for h in SLOT_HOURS
            if first <= h < last]


def qr_svg(text: str) -> str:
    """`text` as a QR code, an inline <svg> element (no XML declaration: it sits inside the page)."""
    out = io.BytesIO()
    qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2).save(out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg"):]


def routes(services) -> list[tuple]:
    cloud = services.cloud

    def stores_for(request) -> tuple[list, str | None]:
        return sorted(cloud.world.stores.values(), key=lambda s: s.store_id), store_of(request, services)

    async def deal_list(request):
        return mall_page(request, services, "group_list.html", {"deals": deals(cloud.world.rule_data,
                                                                               cloud.world.catalogue)},
                         title=i18n.words(lang_of(request))["group_buys"])

    async def deal_page(request):
        rule_id = request.path_params["rule_id"]
        found = [d for d in deals(cloud.world.rule_data, cloud.world.catalogue) if d["id"] == rule_id]
        if not found:
            return mall_error(request, services, 404, i18n.words(lang_of(request))["page_missing"])
        stores, chosen = stores_for(request)
        return mall_page(request, services, "group_deal.html", {
            "deal": found[0], "stores": stores, "chosen": chosen, "slots": pickup_slots(cloud.now_ms())},
            title=found[0]["name"])

    async def group_page(request):
        group_id = request.path_params["group_id"]
        try:
            group = await services.group_buys.view(group_id)
        except Refusal as refusal:
            if refusal.kind != "not_found":
                raise
            return mall_error(request, services, 404, i18n.words(lang_of(request))["page_missing"])
        share = str(request.url.replace(query="", fragment=""))
        stores, chosen = stores_for(request)
        product = cloud.world.catalogue.by_sku.get(group["sku"])
        return mall_page(request, services, "group.html", {
            "g": group, "share": share, "qr": qr_svg(share), "stores": stores, "chosen": chosen,
            "slots": pickup_slots(cloud.now_ms()), "pic": shelf.tile(product, None) if product else None,
            "closes_ms": parse_rfc3339(group["closes_at"]), "now_ms": cloud.now_ms()}, title=group["name"])

    return [("/mall/group-buys", deal_list, ["GET"]), ("/mall/group-buys/{rule_id}", deal_page, ["GET"]),
            ("/mall/groups/{group_id}", group_page, ["GET"])]
