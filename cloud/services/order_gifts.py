"""Gifts of online orders: a Gift rule the order reached becomes a zero-priced line of the order, RESERVED from the
store's online stock with the order, sent to the store, picked and taken out of stock like any line.

Guarantees:
- A gift is reserved at the order's first store (the one it was priced for) under a reservation id derived from
  the order's key, so a retry reserves it once; it is then one more line of the order's allocation, so paying
  confirms it, picking fulfils it, and cancel, expiry and the abandoned-order sweeper release it like any line.
- When the gift's SKU is also bought from that store, the line's reservation is replaced by one for the bought
  units plus the gift (the store picks one line per SKU); the old one is cancelled only once the new one holds.
- A gift line the store finds short at picking is not sent for from another store (cloud/services/picking.py):
  it is worth nothing to the order's money, and a second store's trip is not worth it.
- A gift that is out of stock never fails the order: the order has no gift line and its explanation says, per
  gift, `given: false` and why. (Its budget, if the gift rule is capped, stays consumed with the order and comes
  back if the order is cancelled or expires.)
"""
from __future__ import annotations

import logging

from actors.stock_pool import Cancel, Reserve, cancel_id

log = logging.getLogger("freshmesh.order_gifts")


class OrderGifts:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def reserve(self, kid: str, order_id: str, plan: dict[str, dict[str, int]], priced: dict,
                      allocation: dict[str, list[dict]]) -> None:
        """Reserve the gifts `priced["gifts"]` names at the plan's first store; add what was reserved to the
        order's lines (at 0 fen) and `allocation`; note every gift, given or not, in `priced["explain"]["gifts"]`."""
        store = next(iter(plan))
        stock, catalogue = self.cloud.actors.stock_pool, self.cloud.world.catalogue
        notes = []
        for gift in priced.pop("gifts", []):
            sku, qty = gift["sku"], gift["qty"]
            lines = allocation.setdefault(store, [])
            bought = next((line for line in lines if line["sku"] == sku), None)
            rid = f"{kid}:{store}:{sku}:gift" if bought is None else f"{kid}:{store}:{sku}+gift"
            total = qty + (bought["qty"] if bought else 0)
            r = await stock.send(Reserve(id=f"reserve:{rid}", reservation_id=rid, order_id=order_id, store=store,
                                         sku=sku, qty=total, ttl_ms=self.cloud.reservation_ttl_ms))
            if not r.succeeded:
                notes.append({**gift, "given": False,
                              "reason": f"out of stock at {store}: {r.settled.get('available', 0)} free for the gift"})
                continue
            if bought is not None:  # the store picks one line per sku: the bought units and the gift together
                await stock.send(Cancel(id=cancel_id(kid, f"{bought['reservation_id']}:gift"),
                                        reservation_id=bought["reservation_id"], sku=sku))
                bought.update(qty=total, reservation_id=rid)
            else:
                lines.append({"sku": sku, "qty": qty, "reservation_id": rid, "gift": gift["rule_id"]})
            product = catalogue.get(sku)
            priced["lines"].append({"sku": sku, "name": product.name, "qty": qty, "weighed": product.weighed,
                                    "list_fen": gift["value_fen"], "amount_fen": 0, "gift": gift["rule_id"]})
            notes.append({**gift, "given": True, "store": store})
        if notes:
            priced["explain"]["gifts"] = notes
