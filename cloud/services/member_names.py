"""A member's name, given at the till when they register (optional), kept as personal data (PIPL) like the phone:
sealed (AES-GCM, `cloud/services/pii.py`, bound to the member's row and the field "name"), shown only masked
(`张*`: the family name and a star per other character), opened only for the member's own data export, and cleared
by erasure with everything else that identifies the person (`cloud.services.members.Members.erase`).

Guarantees:
- A name is set only on the member made by the registration that gave it: registering a phone that is a member
  already never renames them (a till cannot overwrite someone's name by typing their phone).
- The name is trimmed, at most `protocol.till_member_messages.NAME_MAX` characters, no control characters (the
  message's own check); an empty name keeps none.
- Migration 42 (`MIGRATION_42`) adds the two columns, and the shift reports' `uncounted` flag
  (`cloud/messaging/shift_reports.py`): the one migration of this part.
"""
from __future__ import annotations

from cloud.services.pii import Pii

MIGRATION_42 = """
    alter table members add column if not exists name_sealed bytea;
    alter table members add column if not exists name_masked text;
    alter table shift_reports add column if not exists uncounted boolean not null default false;
"""


def masked_name(name: str) -> str:
    """'张三' -> '张*', '欧阳娜娜' -> '欧***', 'Li' -> 'L*': the first character and a star for each other one."""
    name = name.strip()
    if not name:
        return ""
    return name[0] + "*" * max(len(name) - 1, 1)


async def set_name(db, pii: Pii, member_id: str, name: str) -> str:
    """Seal `name` into the member's row (only if they have none yet); the masked name kept, or ''."""
    name = name.strip()
    if not name:
        return ""
    row = await db.fetchrow(
        "update members set name_sealed = $2, name_masked = $3 where member_id = $1 and name_sealed is null "
        "and erased_ms is null returning name_masked", member_id, pii.seal(name, row=member_id, field="name"),
        masked_name(name))
    return row["name_masked"] if row else ""


def opened_name(pii: Pii, row) -> str | None:
    """The member's name in clear (their own export only), or None."""
    sealed = row.get("name_sealed")  # a row from before migration 42 has no such column
    return pii.open(sealed, row=row["member_id"], field="name") if sealed else None
