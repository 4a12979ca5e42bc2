"""What a pay shell does when the actor's `pay` raised after the cloud granted a stored-value hold (issue 19 review,
defect 3): `edge/stored_value.py` and `edge/split_pay.py` both come here.

The actor commits a sale (`db.apply`) and then runs steps after the commit (printing, budgets, restock alerts, gift
stock). An exception from one of those reaches the shell although the sale, which names the hold, is durable and
on its way to the cloud, which will capture that hold. Releasing it then would let the cloud capture a released
hold: the member would keep the goods and the money.

Guarantees of `after_failed_pay`:
- the hold is released only if no stored sale names it (nothing was sold: the first tender goes back now, not when
  the hold lapses);
- a sale that was made is answered as the sale (what the store db kept: its id, total, tenders, change), marked
  `after_commit_failed` with what failed, so the page shows the sale rather than an error the cashier would retry.
"""
from __future__ import annotations

import json
import logging

log = logging.getLogger("freshmesh.edge.pay")


async def sale_naming(store_db, hold_id: str) -> dict | None:
    """The stored sale whose payments name `hold_id` (a payment's reference), or None."""
    rows = await store_db._all(  # noqa: SLF001 - the actor's own writer: sees the sale it just committed
        "select sale_id, total_fen, payments, offline from sales where payments like ? escape '\\'",
        ("%" + hold_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",))
    for sale_id, total_fen, payments, offline in rows:
        paid = json.loads(payments)
        if any(len(p) > 2 and p[2] == hold_id for p in paid):
            return {"sale_id": sale_id, "total_fen": total_fen, "offline": bool(offline),
                    "tenders": [{"method": p[0], "amount_fen": p[1]} for p in paid]}
    return None


async def after_failed_pay(box, hold_id: str, member_id: str, tendered_fen: int, error: BaseException) -> dict | None:
    """The sale's answer if a stored sale names the hold (the hold stays, for the cloud to capture), else None
    after releasing the hold (the caller re-raises)."""
    try:
        sale = await sale_naming(box.store_db, hold_id)
    except Exception as exc:  # noqa: BLE001 - cannot tell whether the sale was made: the hold is kept and lapses
        log.error("store %s: hold %s kept to lapse (whether its sale was written cannot be read: %r)",
                  box.store_id, hold_id, exc)  # releasing it could free money a written sale still names
        return None
    if sale is None:
        if box.sync is not None:
            await box.sync.release(hold_id, member_id)
        return None
    log.error("store %s: sale %s committed (hold %s kept for the cloud's capture); a step after the commit "
              "failed: %r", box.store_id, sale["sale_id"], hold_id, error)
    cash = sum(t["amount_fen"] for t in sale["tenders"] if t["method"] == "cash")
    return {**sale, "hold_id": hold_id, "change_fen": max(tendered_fen - cash, 0) if cash else 0,
            "after_commit_failed": f"the sale was made; what follows it failed ({type(error).__name__}): "
                                   "reprint the receipt from the sales list if none came out"}
