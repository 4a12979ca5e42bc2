"""Transfers between stores as the cloud runs them (issue 16 item 5): asked by HQ, a store manager or routing
(`request_transfer`), seen by operators with what is in transit.

Guarantees:
- An operator's request is an hq_admin's, or the receiving store's manager's (`store.change` on the to-store); it is
  written with its audit entry in one PostgreSQL transaction under a transfer id made here (the origin), then the
  sending store is told (`TransferToDispatch`, applied once there). A store not reachable now is told again when
  the cloud starts (`resend`), under the same event id. Routing asks through `request_transfer` (no operator: the
  row names "routing").
- The stores' own steps (a store's request, dispatch, receipt) arrive as edge events and are believed, told and
  recorded by the bridge (`cloud.messaging.transfers`); this service only reads them.
- In transit = the dispatched lines of the transfers still `dispatched` (not received), per SKU and lot.
- A store manager sees only the transfers from or to their own store.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from cloud.messaging.transfers import jsonb, tell_arriving, tell_cancelled, tell_to_dispatch
from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal
from protocol import roles
from protocol.clock import to_rfc3339
from protocol.messages import SKU_RE
from protocol.transfer_approval import AWAITING, initial_status
from protocol.transfer_messages import REASON_MAX_CHARS, TRANSFER_LINES_MAX, TRANSFER_QTY_MAX

STATUSES = (AWAITING, "requested", "dispatched", "received", "cancelled", "refused")
LIST_MAX = 500
RESEND_MAX = 1_000
CANCELLED_RESENT_MS = 7 * 86_400_000  # a cancellation is told again at start for a week (a store offline that long)
log = logging.getLogger("freshmesh.transfers")


def _lines(lines: Any, catalogue) -> list[dict[str, Any]]:
    if not isinstance(lines, list) or not 0 < len(lines) <= TRANSFER_LINES_MAX:
        raise Refusal("invalid", f"lines: a list of 1-{TRANSFER_LINES_MAX} {{\"sku\", \"qty\"}}")
    total: dict[str, int] = {}
    for i, line in enumerate(lines):
        if not isinstance(line, dict) or set(line) != {"sku", "qty"}:
            raise Refusal("invalid", f"lines[{i}]: exactly {{\"sku\", \"qty\"}}")
        sku, qty = line["sku"], line["qty"]
        if not isinstance(sku, str) or not SKU_RE.match(sku) or sku not in catalogue:
            raise Refusal("invalid", f"lines[{i}].sku: unknown product {str(sku)[:40]!r}")
        if isinstance(qty, bool) or not isinstance(qty, int) or not 0 < qty <= TRANSFER_QTY_MAX:
            raise Refusal("invalid", f"lines[{i}].qty: an integer 1..{TRANSFER_QTY_MAX} (pieces, or grams if "
                                     "sold by the kg)")
        total[sku] = total.get(sku, 0) + qty
    return [{"sku": s, "qty": q} for s, q in total.items()]


async def request_transfer(cloud, from_store: str, to_store: str, lines: list[dict[str, Any]], reason: str,
                           now_ms: int, by: Operator | None = None, origin: str = "routing") -> dict[str, Any]:
    """Ask `from_store` to send `lines` ([{"sku", "qty"}]) to `to_store`: recorded (with an audit entry when an
    operator asks), then the sending store is told. Returns the transfer. Raises `Refusal` for what cannot be."""
    stores = cloud.world.stores
    for name, store in (("from_store", from_store), ("to_store", to_store)):
        if not isinstance(store, str) or store not in stores:
            raise Refusal("invalid", f"{name}: no store {str(store)[:40]!r}")
    if from_store == to_store:
        raise Refusal("invalid", "to_store: a transfer is between two different stores")
    if not isinstance(reason, str) or len(reason) > REASON_MAX_CHARS:
        raise Refusal("invalid", f"reason: a text of at most {REASON_MAX_CHARS} characters")
    asked = _lines(lines, cloud.world.catalogue)
    transfer_id = cloud.ids.new()
    who = by.username if by is not None else origin
    status = initial_status(by.role if by is not None else None, origin)  # a manager's ask waits for approval
    async with cloud.db.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """insert into transfers (transfer_id, from_store, to_store, status, lines, reason, origin, requested_by,
                   requested_ms, updated_ms)
               values ($1, $2, $3, $9, $4::jsonb, $5, $6, $7, $8, $8) returning *""",
            transfer_id, from_store, to_store, json.dumps(asked), reason, origin, who, now_ms, status)
        if by is not None:
            await record(conn, now_ms, by, "transfer.request", f"{from_store}->{to_store}/{transfer_id}", None,
                         {"lines": asked, "reason": reason})
    told = await _tell(cloud, row) if status == "requested" else False  # approved first (transfer_approvals)
    return {**transfer_json(row), "store_told": told}


async def _tell(cloud, row) -> bool:
    try:
        await tell_to_dispatch(cloud, row)
    except Exception as exc:  # noqa: BLE001 - kept in PostgreSQL: told again at the next start
        log.warning("transfer %s not sent to store %s now: %s", row["transfer_id"], row["from_store"], exc)
        return False
    return True


def transfer_json(row) -> dict[str, Any]:
    out: dict[str, Any] = {
        "transfer_id": row["transfer_id"], "from_store": row["from_store"], "to_store": row["to_store"],
        "status": row["status"], "lines": jsonb(row["lines"]), "reason": row["reason"], "origin": row["origin"],
        "requested_by": row["requested_by"], "requested_at": to_rfc3339(row["requested_ms"])}
    if row["dispatched"] is not None:
        out.update(dispatched=jsonb(row["dispatched"]), dispatched_by=row["dispatched_by"],
                   dispatched_at=to_rfc3339(row["dispatched_ms"]))
    if row["received"] is not None:
        out.update(received=jsonb(row["received"]), received_by=row["received_by"],
                   received_at=to_rfc3339(row["received_ms"]), discrepancies=jsonb(row["discrepancies"]))
    if row["decided_by"] is not None:  # approved or refused by the sending store or HQ (migration 47)
        out.update(decided_by=row["decided_by"], decided_at=to_rfc3339(row["decided_ms"]),
                   decision_reason=row["decision_reason"])
    out["in_transit"] = out.get("dispatched", []) if row["status"] == "dispatched" else []
    return out


def in_transit(transfers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What is on its way, per (from, to, SKU, lot): the dispatched lines of transfers not received yet."""
    total: dict[tuple[str, str, str, str, str], int] = {}
    for t in transfers:
        for x in t["in_transit"]:
            key = (t["from_store"], t["to_store"], x["sku"], x["lot"], x["use_by"])
            total[key] = total.get(key, 0) + x["qty"]
    return [{"from_store": f, "to_store": to, "sku": s, "lot": lot, "use_by": u, "qty": q}
            for (f, to, s, lot, u), q in sorted(total.items())]


class Transfers:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def request(self, body: dict[str, Any], by: Operator) -> dict[str, Any]:
        extra = set(body) - {"from_store", "to_store", "lines", "reason"}
        if extra:
            raise Refusal("invalid", f"unknown field(s) {sorted(extra)}")
        to_store = body.get("to_store")
        why = roles.refusal(by.role, "store.change", by.store_id, to_store if isinstance(to_store, str) else None)
        if why is not None:  # HQ, or the manager of the store the goods go to
            raise Refusal("forbidden", f"{by.username}: {why}")
        return await request_transfer(self.cloud, body.get("from_store"), to_store, body.get("lines"),  # type: ignore[arg-type]
                                      body.get("reason", ""), self.cloud.now_ms(), by, origin="hq")

    async def cancel(self, transfer_id: str, body: dict[str, Any], by: Operator) -> dict[str, Any]:
        """HQ (or the receiving store's manager) cancels a transfer not dispatched yet; audited; both stores told.
        A dispatch the sending store made offline before it heard is still taken when it arrives (the goods left)."""
        reason = body.get("reason", "")
        if set(body) - {"reason"} or not isinstance(reason, str) or len(reason) > REASON_MAX_CHARS:
            raise Refusal("invalid", f"body: {{\"reason\"}}, a text of at most {REASON_MAX_CHARS} characters")
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from transfers where transfer_id = $1 for update", transfer_id)
            if row is None:
                raise Refusal("not_found", f"no transfer {transfer_id[:40]}")
            why = roles.refusal(by.role, "store.change", by.store_id, row["to_store"])
            if why is not None:
                raise Refusal("forbidden", f"{by.username}: {why}")
            if row["status"] == "cancelled":
                return transfer_json(row)
            was = row["status"]
            if was not in ("requested", AWAITING):
                raise Refusal("order_state", f"transfer {transfer_id} is {was}: only a transfer not "
                                             "dispatched yet is cancelled")
            row = await conn.fetchrow("update transfers set status = 'cancelled', updated_ms = $2 "
                                      "where transfer_id = $1 returning *", transfer_id, now)
            await record(conn, now, by, "transfer.cancel", f"{row['from_store']}->{row['to_store']}/{transfer_id}",
                         {"status": was}, {"status": "cancelled", "reason": reason})
        try:
            await tell_cancelled(self.cloud, row, reason)
        except Exception as exc:  # noqa: BLE001 - kept in PostgreSQL: told again at the next start
            log.warning("transfer %s: stores not told of its cancellation now: %s", transfer_id, exc)
        return transfer_json(row)

    async def view(self, by: Operator, status: str | None = None, store: str | None = None) -> dict[str, Any]:
        """Transfers (newest first) by status and store (from or to), with what is in transit."""
        if status is not None and status not in STATUSES:
            raise Refusal("invalid", f"status: one of {', '.join(STATUSES)}")
        if store is not None and store not in self.cloud.world.stores:
            raise Refusal("not_found", f"no store {store[:40]}")
        if by.role in roles.SCOPED_TO_OWN_STORE:  # a store manager: their own store's transfers only
            if store is not None and store != by.store_id:
                raise Refusal("forbidden", f"{by.username}: a store manager of {by.store_id} may not see store "
                                           f"{store}'s transfers")
            store = by.store_id
        rows = await self.cloud.db.fetch(
            f"""select * from transfers where ($1::text is null or status = $1)
                and ($2::text is null or from_store = $2 or to_store = $2)
                order by updated_ms desc, transfer_id desc limit {LIST_MAX}""", status, store)  # noqa: S608
        transfers = [transfer_json(r) for r in rows]
        return {"transfers": transfers, "in_transit": in_transit(transfers)}

    async def resend(self) -> None:
        """Every open transfer's message to its store again (applied once there, by its derived event id): a store
        that could not be told when it was asked (or dispatched to) hears of it now."""
        rows = await self.cloud.db.fetch(
            "select * from transfers where status in ('requested', 'dispatched') or (status = 'cancelled' and "
            "updated_ms > $2) order by updated_ms limit $1", RESEND_MAX, self.cloud.now_ms() - CANCELLED_RESENT_MS)
        for row in rows:
            try:
                if row["status"] == "cancelled":
                    await tell_cancelled(self.cloud, row, "")
                elif row["status"] == "requested":
                    await tell_to_dispatch(self.cloud, row)
                else:
                    by = (row["dispatched_by"] or "").split(":", 1)[-1] or "staff"
                    await tell_arriving(self.cloud, row, jsonb(row["dispatched"]), by)
            except Exception as exc:  # noqa: BLE001 - the next start tries again
                log.warning("transfer %s not re-sent: %s", row["transfer_id"], exc)
