"""Who did a back-room step (received, counted, dispatched...) is accountable: a box with cashiers configured takes
only their ids; a box with none configured (a test box, a store before its staff are set up) takes any name."""
from __future__ import annotations

from edge.core.outcome import Refused


def known_cashier(box, cashier_id: str, field: str) -> None:
    """Refuse (404, naming the body's `field`) a staff id that is not one of this store's cashiers."""
    hashes = box.cashier_pins.hashes
    if hashes and cashier_id not in hashes:
        raise Refused(404, f"{field}: no cashier {cashier_id} at this store")
