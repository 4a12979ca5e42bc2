"""Approving or refusing a transfer a store manager asked of another store (issue 21 item 3).

Guarantees:
- Only the sending store's manager or an hq_admin decides (`protocol.transfer_approval.who_may_decide`); the
  decision, its audit entry (who, before, after, why) and the transfer's new status are written in one PostgreSQL
  transaction, under the row's lock, so two deciders racing cannot both win: the second sees the first's decision.
- Approved, the sending store is told to dispatch (`TransferToDispatch`, applied once there); a store not reachable
  now is told again when the cloud starts (`Transfers.resend`: the transfer is `requested`). Refused, no store is
  told (the sending store never heard of it; the asking store's manager sees it refused, with the reason).
- The same decision again answers the transfer as it is (idempotent); the other decision on a decided transfer is a
  conflict naming what was decided.
"""
from __future__ import annotations

from typing import Any

from cloud.services.operators import Operator, record
from cloud.services.transfers import _tell, transfer_json
from cloud.services.verdicts import Refusal
from protocol.transfer_approval import DECISIONS, decide, who_may_decide
from protocol.transfer_messages import REASON_MAX_CHARS


def _body(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise Refusal("invalid", "body: {\"decision\": \"approve\" | \"refuse\", \"reason\"}")
    extra = set(body) - {"decision", "reason"}
    if extra:
        raise Refusal("invalid", f"unknown field(s) {sorted(extra)}")
    decision, reason = body.get("decision"), body.get("reason", "")
    if decision not in DECISIONS:
        raise Refusal("invalid", f"decision: one of {', '.join(DECISIONS)}")
    if not isinstance(reason, str) or len(reason) > REASON_MAX_CHARS:
        raise Refusal("invalid", f"reason: a text of at most {REASON_MAX_CHARS} characters")
    if decision == "refuse" and not reason.strip():
        raise Refusal("invalid", "reason: say why the transfer is refused (the asking store reads it)")
    return decision, reason.strip()


class TransferApprovals:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def decide(self, transfer_id: str, body: Any, by: Operator) -> dict[str, Any]:
        decision, reason = _body(body)
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from transfers where transfer_id = $1 for update", transfer_id)
            if row is None:
                raise Refusal("not_found", f"no transfer {transfer_id[:40]}")
            why = who_may_decide(by.role, by.store_id, row["from_store"])
            if why is not None:
                raise Refusal("forbidden", f"{by.username}: {why}")
            try:
                after, changed = decide(row["status"], decision)
            except ValueError as exc:
                raise Refusal("order_state", f"transfer {transfer_id}: {exc}") from None
            if not changed:
                return transfer_json(row)
            row = await conn.fetchrow(
                """update transfers set status = $2, decided_by = $3, decided_ms = $4, decision_reason = $5,
                       updated_ms = $4 where transfer_id = $1 returning *""",
                transfer_id, after, by.username, now, reason)
            await record(conn, now, by, f"transfer.{decision}", f"{row['from_store']}->{row['to_store']}/{transfer_id}",
                         {"status": "awaiting_approval"}, {"status": after, "reason": reason})
        if after != "requested":
            return transfer_json(row)
        return {**transfer_json(row), "store_told": await _tell(self.cloud, row)}
