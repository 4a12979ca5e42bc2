"""The cart's price before an order exists (`POST /cart/price`): what a mall or mini-program shows while the
customer shops. It prices exactly as placing the order would (the same catalogue, promotion book, member level and
the coupons the member holds, checked as an order checks them) and adds what the order API applies at placing:
the delivery fee and free-delivery threshold of the store that would deliver, and the next bookable slots.

Guarantees:
- Nothing is held or consumed: no reservation, no promotion budget, no coupon (the codes are checked read-only;
  budget-capped rules are priced with what is left now, as an order's coupon preview does). The order's own
  pricing at `POST /orders` is the one that counts; the answer says so by carrying the rule book's version.
- Each saving is explained (rule, name, fen, the lines it touched) and each near miss says how much more gets what.
- Bad input names the field and why (422); a coupon code that is not the member's, or not usable, names the code.
The pure part (`price_cart`, `slots`, `delivering_store`) is unit-tested without a cloud.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Literal

from actors.order_router import distance_m
from cloud.services.delivery_terms import terms_of
from cloud.services.order_request import Location, OrderItem, check_basket
from cloud.services.verdicts import Refusal
from protocol.clock import to_rfc3339
from protocol.pricing import BasketLine, PricingContext, price_basket
from protocol.schema import record

SLOTS_SHOWN = 8
CN = timezone(timedelta(hours=8))  # stores' opening hours are China time


@record
class CartRequest:
    items: tuple[OrderItem, ...]
    fulfilment: Literal["pickup", "delivery"] = "pickup"
    store_id: str | None = None  # pickup: the chosen store; delivery: a preferred one (else the nearest delivering)
    location: Location | None = None  # the delivery address
    coupons: tuple[str, ...] = ()  # codes from the signed-in member's wallet

    def __post_init__(self) -> None:
        check_basket(self)  # as an order's (cloud/services/order_request.py)


def checked_items(catalogue, items) -> None:
    for item in items:
        product = catalogue.by_sku.get(item.sku)
        if product is None:
            raise Refusal("invalid", f"items: unknown sku {item.sku!r}")
        if "online" not in product.channels:
            raise Refusal("invalid", f"items: {item.sku} ({product.name}) is not sold online")


def delivering_store(world, req: CartRequest) -> str:
    """The store the cart is priced at: pickup's chosen one; for delivery the preferred store if it reaches the
    address, else the nearest store whose delivery radius does."""
    if req.fulfilment == "pickup":
        if req.store_id not in world.stores:
            raise Refusal("invalid", f"store_id: unknown store {req.store_id!r}")
        return str(req.store_id)
    assert req.location is not None
    lat, lon = req.location.lat, req.location.lon
    reach = sorted((distance_m(lat, lon, s.lat, s.lon), s.store_id) for s in world.stores.values()
                   if distance_m(lat, lon, s.lat, s.lon) <= s.delivery_radius_m)
    if not reach:
        raise Refusal("no_store", "location: no store delivers to this address (it is outside every store's "
                                  "delivery radius)")
    ids = [store_id for _, store_id in reach]
    return req.store_id if req.store_id is not None and req.store_id in ids else ids[0]


def price_cart(world, req: CartRequest, store_id: str, ctx: PricingContext) -> dict:
    """The cart priced in `ctx` (store, moment, member level, coupon rules), with savings, near misses and (for
    delivery) the fee."""
    catalogue = world.catalogue
    lines = [BasketLine(sku=i.sku, weight_g=i.qty) if catalogue.get(i.sku).weighed else BasketLine(sku=i.sku, qty=i.qty)
             for i in req.items]
    result = price_basket(catalogue, world.rule_book, lines, ctx)
    body: dict = {
        "store_id": store_id, "fulfilment": req.fulfilment, "rule_book_version": result.rule_book_version,
        "lines": [{"sku": line.sku, "name": line.name, "qty": line.qty or line.weight_g, "weighed": bool(line.weight_g),
                   "unit_price_fen": line.unit_price_fen, "list_fen": line.list_fen, "amount_fen": line.amount_fen,
                   "rules": list(line.rules)} for line in result.lines],
        "gifts": [{"rule_id": g.rule_id, "sku": g.sku, "qty": g.qty, "value_fen": g.value_fen} for g in result.gifts],
        "subtotal_fen": result.subtotal_fen, "discount_fen": result.discount_fen,
        "applied": [{"rule_id": a.rule_id, "type": a.type, "name": a.name, "saving_fen": a.saving_fen,
                     "skus": [line.sku for line in result.lines if a.rule_id in line.rules]}
                    for a in result.applied],
        "almost": [{"rule_id": n.rule_id, "name": n.name, "missing_fen": n.missing_fen, "message": n.message}
                   for n in result.near_misses],
        "coupons_used": list(result.coupons_used), "goods_fen": result.total_fen, "delivery": None,
        "total_fen": result.total_fen}
    if req.fulfilment == "delivery":
        terms = terms_of(world, store_id)
        fee = terms.fee_for(result.total_fen)
        body["delivery"] = {"fee_fen": fee, "standard_fee_fen": terms.fee_fen, "free_from_fen": terms.free_from_fen,
                            "missing_for_free_fen": max(0, terms.free_from_fen - result.total_fen) if fee else 0}
        body["total_fen"] = result.total_fen + fee
    return body


def slots(store, fulfilment: str, now_ms: int, shown: int = SLOTS_SHOWN) -> list[dict]:
    """The next slots the store's hours offer (China time), after the delivery cut-off for delivery (pickup needs
    the same time to pick): today's remaining ones, then tomorrow's. Capacity is the order API's to enforce
    (a full slot is refused with 409 naming it); `with_places` adds what is left of it to show."""
    out: list[dict] = []
    now = datetime.fromtimestamp(now_ms / 1000, CN)
    earliest = now_ms + store.slot_cutoff_min * 60_000
    step = timedelta(minutes=store.slot_minutes)
    for day in range(3):
        date = (now + timedelta(days=day)).date()
        opens = datetime.combine(date, datetime.strptime(store.opens, "%H:%M").time(), CN)
        closes = datetime.combine(date, datetime.strptime(store.closes, "%H:%M").time(), CN)
        start = opens
        while start + step <= closes and len(out) < shown:
            start_ms = int(start.timestamp() * 1000)
            if start_ms >= earliest:
                out.append({"start": start.isoformat(), "end": (start + step).isoformat(),
                            "start_ms": start_ms, "kind": fulfilment})
            start += step
    return out


def with_places(shown: list[dict], left: dict[int, int] | None, capacity: int) -> list[dict]:
    """Each slot with its places: `capacity`, `left` and `full` (a full slot is still listed, so a page can show it
    disabled with the reason). `left` None (the router could not be asked): the slots as they are, unannotated."""
    if left is None:
        return shown
    return [{**slot, "capacity": capacity, "left": left.get(slot["start_ms"], capacity),
             "full": left.get(slot["start_ms"], capacity) <= 0} for slot in shown]


async def places_left(services, store_id: str, shown: list[dict]) -> dict[int, int] | None:
    """The router's places left in these slots; None when it cannot answer now (the preview still answers: booking
    at `POST /orders` is what enforces capacity)."""
    try:
        return await services.cloud.actors.router.slots_left(store_id, [s["start_ms"] for s in shown])
    except Exception:  # noqa: BLE001 - an unannotated slot list beats a failed cart price
        return None


async def preview(services, req: CartRequest, member: str | None) -> dict:
    """The shell: the member's level and coupons read (nothing held), then the pure pricing."""
    cloud = services.cloud
    world = cloud.world
    checked_items(world.catalogue, req.items)
    store_id = delivering_store(world, req)
    coupons = []
    if req.coupons:
        if member is None:
            raise Refusal("unauthorized", "coupons: sign in to use coupons from your wallet")
        coupons = await services.coupons.check(req.coupons, member, store_id, "cart-preview")
    base = PricingContext(channel="online", store_id=store_id, now_ms=cloud.now_ms(),
                          coupons=tuple(c.rule_id for c in coupons),
                          new_member=any(c.new_member_only for c in coupons))
    ctx = await services.orders.member_pricing.with_level(member or "", base, budgets=True)
    body = price_cart(world, req, store_id, replace(ctx, now_ms=cloud.now_ms()))
    body["member_level"] = ctx.member_level
    body["coupons"] = [{"code": c.code, "rule_id": c.rule_id, "used": c.rule_id in body["coupons_used"]}
                       for c in coupons]
    shown = slots(world.stores[store_id], req.fulfilment, cloud.now_ms())
    body["slots"] = with_places(shown, await places_left(services, store_id, shown),
                                world.stores[store_id].slot_capacity)
    body["priced_at"] = to_rfc3339(cloud.now_ms())
    return body
