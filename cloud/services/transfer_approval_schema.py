"""Migration 47 (cloud/migrations.py): who approved or refused a transfer, when and why
(cloud/services/transfer_approvals.py); a partial index finds the transfers waiting for a store's decision."""
from __future__ import annotations

MIGRATION_47 = (47, "transfers approved or refused by the sending store or HQ (cloud/services/transfer_approvals.py)",
                """
    alter table transfers add column if not exists decided_by text;
    alter table transfers add column if not exists decided_ms bigint;
    alter table transfers add column if not exists decision_reason text;
    create index if not exists transfers_awaiting on transfers (from_store) where status = 'awaiting_approval';
""")
