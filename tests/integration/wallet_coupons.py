"""Members and coupons made straight through a cloud's services (for modules that start their own services rather
than going through the HTTP API): a new member, one coupon of a rule in their wallet, and a coupon's status."""
from __future__ import annotations

import hashlib
import uuid

from cloud.services.operators import Operator


async def new_member(services) -> str:
    return (await services.members.register(f"13{uuid.uuid4().int % 10**9:09d}"))[0]["member_id"]


async def issued_coupon(services, rule_id: str, member_id: str, prefix: str) -> str:
    """One coupon of `rule_id` in the member's wallet, from a new online definition named `prefix`-rule-random and
    issued by a new HQ admin (definitions are chain-wide: the prefix keeps each module's own)."""
    username = f"hq-admin-{uuid.uuid4().hex[:8]}"
    await services.operators.create(username, "x" * 16, "hq_admin", None, by_name="tests")
    op_id = await services.cloud.db.fetchval("select operator_id from operators where username = $1", username)
    by = Operator(operator_id=op_id, username=username, role="hq_admin", store_id=None)
    definition = f"{prefix}-{rule_id.lower()}-{uuid.uuid4().hex[:4]}"
    await services.coupons.define({"definition_id": definition, "rule_id": rule_id, "name": rule_id,
                                   "valid_days": 30, "channels": ["online"]}, by)
    body = {"batch_id": uuid.uuid4().hex, "member_ids": [member_id], "why": "campaign"}
    answer = await services.coupons.issue(definition, body, hashlib.blake2b(uuid.uuid4().bytes).digest()[:16], by)
    return answer["issued"][0]["code"]


async def coupon_status(services, code: str) -> tuple[str, str | None]:
    row = await services.cloud.db.fetchrow("select status, reserved_for from coupons where code = $1", code)
    return row["status"], row["reserved_for"]
