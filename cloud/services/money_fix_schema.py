"""Cloud migration 43 (issue 19 review of the till's money code): what the cloud keeps to believe a store's refunds
by tender and to bound its till registrations.

- `till_returns.refunds`: a till return's refunds as the store claimed them, (method, fen) pairs: a split sale's
  later returns are judged against what each tender already gave back (`protocol.tender_refunds`). Rows from before
  have NULL (judged as their one `method` giving back `amount_fen`).
- `till_registration_days`: per store and chain day, how many members its tills registered: ONE row per (store, day)
  updated atomically by whichever cloud process takes the request (`cloud/messaging/registration_cap.py`), so the
  daily cap holds across every bridge and API process.
- `till_registered_members`: members a till registered whose phone is not proven yet; their new-member coupons wait
  for the first sign-in with the one-time code (`cloud/messaging/registration_cap.py`).
"""
from __future__ import annotations

MIGRATION_43 = (43, "till returns' refunds by tender; till registrations' daily cap and members awaiting phone proof", """
    alter table till_returns add column if not exists refunds jsonb;
    create table if not exists till_registration_days (
        store_id   text   not null,
        day        text   not null,
        registered int    not null check (registered >= 0),
        primary key (store_id, day)
    );
    create table if not exists till_registered_members (
        member_id   text   primary key,
        store_id    text   not null,
        registered_ms bigint not null,
        proven_ms   bigint
    );
""")
