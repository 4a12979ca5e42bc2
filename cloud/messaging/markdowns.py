"""Markdowns on the cloud's side: what the stores' till sales report that markdown rules gave away, recorded once.

Guarantees:
- Recorded in the bridge's transaction, with the sale's event id: a redelivered sale records nothing more (one row
  per (store, sale, line), `on conflict do nothing`).
- Believed as the store's own fact about its own sale: the message's own check (`protocol.markdowns`) already holds
  each markdown to a line of that sale with its SKU, once, with a positive amount; the store's sale is its fact.
- The chain day of each row is the chain's business day of the sale's wall clock (`protocol.policy.chain_day`), so
  the report groups a sale at 23:30 local under that day, whatever the cloud's own time zone.
"""
from __future__ import annotations

from protocol.messages import Message, SaleCommitted
from protocol.policy import chain_day

MIGRATION_24 = (24, "markdowns given at the tills: per sale line, by rule, store and chain day", """
    create table if not exists markdowns_given (
        store_id   text not null,
        sale_id    text not null,
        line       int not null,
        event_id   text not null,
        rule_id    text not null,
        sku        text not null,
        lot        text not null default '',
        saving_fen bigint not null check (saving_fen > 0),
        day        date not null,             -- the chain's business day of the sale
        wall_ms    bigint not null,
        primary key (store_id, sale_id, line)
    );
    create index if not exists markdowns_given_day on markdowns_given (day, store_id, rule_id);
""")


async def record(conn, events: list[Message]) -> None:
    """The markdowns of the batch's believed till sales, in the bridge's transaction."""
    rows = [(e.store_id, e.sale_id, m.line, e.event_id, m.rule_id, m.sku, m.lot, m.saving_fen, chain_day(e.wall_ms),
             e.wall_ms)
            for e in events if isinstance(e, SaleCommitted) for m in e.markdowns]
    if rows:
        await conn.executemany(
            """insert into markdowns_given (store_id, sale_id, line, event_id, rule_id, sku, lot, saving_fen, day, wall_ms)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict do nothing""", rows)
