"""Market-stall lanes at the till (issue 21.6): which lanes are a stall's, and what each lane may sell. Pure.

The box's configuration names the lanes that belong to a stall (`stall_lanes`: lane -> stall id, like
`self_checkout_lanes`); every other lane is the store's own. A stall lane sells only its stall's products and a
store lane none of any stall's (`protocol/stalls.lane_refusal`): the line is refused when scanned or weighed (403,
naming the lane, the product and whose it is), and the basket is checked again when paid, so a catalogue that
moved a product to a stall in between cannot slip it through. The sale then carries its lane's stall, which the
cloud believes only for that stall's products (`protocol/stalls.judge_sale`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from edge.core.outcome import Refused
from protocol.pricing.catalogue import Catalogue
from protocol.stalls import check_stall_id, lane_refusal

REFUSED_STATUS = 403  # the lane may not sell it: not a bad request, not a conflict of state


def parse_config(value: object) -> dict[str, str]:
    """The box configuration's `stall_lanes` ({lane: stall id}), checked at start (a wrong entry stops the box)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("stall_lanes: a map of lane -> stall id")
    for lane, stall in value.items():
        if not isinstance(lane, str) or not lane:
            raise ValueError(f"stall_lanes: lane {lane!r} is not a lane name")
        check_stall_id(stall, f"stall_lanes[{lane}]")
    return dict(value)


def stall_of(stall_lanes: Mapping[str, str], lane: str) -> str:
    """The stall whose lane `lane` is ("" = a store lane)."""
    return stall_lanes.get(lane, "")


def check_line(stall_lanes: Mapping[str, str], catalogue: Catalogue | None, lane: str, sku: str) -> None:
    """Refused (403, saying why) when `lane` may not sell `sku`."""
    product = catalogue.by_sku.get(sku) if catalogue is not None else None
    why = lane_refusal(lane, stall_of(stall_lanes, lane), sku, product.stall if product is not None else "")
    if why is not None:
        raise Refused(REFUSED_STATUS, why)


def check_basket(stall_lanes: Mapping[str, str], catalogue: Catalogue | None, lane: str, skus: Iterable[str]) -> None:
    for sku in skus:
        check_line(stall_lanes, catalogue, lane, sku)
