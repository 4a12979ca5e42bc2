"""A delivery order's terms from its store: the slot cut-off (checked before anything is reserved) and the delivery
fee (added to the order's total unless the basket reaches the store's free-delivery threshold). The decisions are
`protocol.delivery.Terms`; this module applies them to an order being placed."""
from __future__ import annotations

from actors.order_router import distance_m
from cloud.services.verdicts import Refusal
from protocol.delivery import Terms


def terms_of(world, store_id: str) -> Terms:
    store = world.stores[store_id]
    return Terms(store.delivery_fee_fen, store.free_delivery_from_fen, store.slot_cutoff_min)


def check_cutoff_near(world, lat: float, lon: float, slot_ms: int, now_ms: int) -> None:
    """Before routing: Refusal (409 slot) when every store that delivers to (lat, lon) has closed this slot, so the
    customer hears of the cut-off rather than of stores that cannot serve it."""
    near = [s.store_id for s in world.stores.values() if distance_m(lat, lon, s.lat, s.lon) <= s.delivery_radius_m]
    problems = {store_id: terms_of(world, store_id).cutoff_problem(slot_ms, now_ms) for store_id in near}
    if near and all(problems.values()):
        check_cutoff(world, [min(near, key=lambda s: terms_of(world, s).cutoff_min)], slot_ms, now_ms)


def check_cutoff(world, stores, slot_ms: int, now_ms: int) -> None:
    """Refusal (409 slot) when any store of the plan can no longer take a delivery in this slot."""
    for store_id in stores:
        problem = terms_of(world, store_id).cutoff_problem(slot_ms, now_ms)
        if problem is not None:
            raise Refusal("slot", f"{problem} (store {store_id})", cutoff_min=terms_of(world, store_id).cutoff_min)


def add_fee(world, store_id: str, priced: dict) -> None:
    """The fee joins the priced body: `total_fen` includes it, `pricing` says what it is and why."""
    terms = terms_of(world, store_id)
    basket = priced["total_fen"]
    fee = terms.fee_for(basket)
    priced["total_fen"] = basket + fee
    priced["explain"]["delivery"] = {"fee_fen": fee, "basket_fen": basket, "free_from_fen": terms.free_from_fen,
                                     "standard_fee_fen": terms.fee_fen}
