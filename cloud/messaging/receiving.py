"""Receiving and shrinkage from the stores, on the cloud's side: believed (`protocol.receiving_facts`), recorded once.

Guarantees:
- A `GoodsReceived` is believed only as its store's own receiving (a receiving id and a delivery note not recorded
  otherwise, products in the catalogue; its store is the subject's, checked by the bridge); a `ShrinkageRecorded`
  only about a shrinkage movement of its own store. Anything else is refused with the reason through the bridge's
  normal path (dead-lettered, the store told `refused`), and the rest of the batch applies.
- Recorded once, in the bridge's transaction with the event ids (`edge_events`): the receiving with its lines
  (expected and booked: over/under delivery), each lot's unit cost per (store, sku, lot), and for every shrinkage
  movement (whatever took it: staff, a return, a delivery back) one loss line per lot, by the chain's day - what
  the loss report (`cloud.services.losses`) and the console's loss chart value at cost and at price.
"""
from __future__ import annotations

from protocol.lots import chain_day
from protocol.messages import Message, StockMoved
from protocol.receiving_facts import ReceivingKnown, judge_receiving, named
from protocol.receiving_messages import GoodsReceived, ShrinkageRecorded

# Migration 21 (cloud/migrations.py): only new tables.
MIGRATION_SQL = """
    create table if not exists receivings (
        receiving_id text primary key,
        event_id     text not null unique,
        store_id     text not null,
        supplier     text not null,
        note_no      text not null,
        received_by  text not null,
        wall_ms      bigint not null,
        day          date not null,
        unique (store_id, supplier, note_no)
    );
    create index if not exists receivings_day on receivings (day, store_id);
    create table if not exists receiving_lines (
        receiving_id  text not null references receivings (receiving_id),
        n             int not null,
        sku           text not null,
        lot           text not null,
        use_by        text not null,
        qty           bigint not null,          -- booked (pieces, or grams)
        expected_qty  bigint not null,          -- what the delivery note says
        unit_cost_fen bigint not null,          -- per piece, or per kg of a weighed product
        primary key (receiving_id, n)
    );
    create table if not exists lot_costs (
        store_id      text not null,
        sku           text not null,
        lot           text not null,
        unit_cost_fen bigint not null,
        receiving_id  text not null,
        updated_ms    bigint not null,
        primary key (store_id, sku, lot)
    );
    create table if not exists loss_lines (
        event_id  text not null,               -- the StockMoved (reason shrinkage)
        lot       text not null,
        store_id  text not null,
        sku       text not null,
        qty       bigint not null,              -- positive: what was lost of this lot
        reason    text not null,
        day       date not null,                -- the chain's day of the movement
        wall_ms   bigint not null,
        primary key (event_id, lot)
    );
    create index if not exists loss_lines_day on loss_lines (day, store_id);
    create index if not exists loss_lines_at on loss_lines (wall_ms);
    create index if not exists stock_movements_receiving on stock_movements (reference) where reason = 'receiving';
    create table if not exists shrinkage_notes (
        shrinkage_id      text primary key,
        event_id          text not null unique,
        movement_event_id text not null,
        store_id          text not null,
        sku               text not null,
        qty               bigint not null,
        reason            text not null,
        lot               text not null,
        recorded_by       text not null,
        note              text not null,
        wall_ms           bigint not null
    );
"""


class Receivings:
    """Held by the bridge: `admit` judges a batch's receiving and shrinkage notes, `record` writes them."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def admit(self, events: list[Message]) -> dict[str, str]:
        """event id -> why, for the batch's notes the cloud does not believe."""
        if not any(isinstance(e, (GoodsReceived, ShrinkageRecorded)) for e in events):
            return {}
        receiving_ids, move_ids = named(events)
        stores = list({e.store_id for e in events if isinstance(e, GoodsReceived)})
        db = self.cloud.db
        products = self.cloud.world.catalogue.by_sku
        known = ReceivingKnown(products=frozenset(products), prices={sku: p.price_fen for sku, p in products.items()})
        for r in await db.fetch("select receiving_id, store_id, event_id, supplier, note_no from receivings "
                                "where receiving_id = any($1::text[]) or store_id = any($2::text[])",
                                list(receiving_ids), stores):
            known.receivings[r["receiving_id"]] = (r["store_id"], r["event_id"])
            known.notes[(r["store_id"], r["supplier"], r["note_no"])] = r["receiving_id"]
        for r in await db.fetch("select event_id, store_id, sku, delta, reference from stock_movements "
                                "where event_id = any($1::text[]) and reason = 'shrinkage'", list(move_ids)):
            known.moves[r["event_id"]] = (r["store_id"], r["sku"], -r["delta"], r["reference"])
        for r in await db.fetch(  # the receiving movements recorded already (a box older than lots: unlotted)
                "select m.store_id, m.reference, m.sku, coalesce(l.lot, '') as lot, "
                "sum(coalesce(l.delta, m.delta))::bigint as moved from stock_movements m "
                "left join stock_movement_lots l on l.event_id = m.event_id "
                "where m.reason = 'receiving' and m.reference = any($1::text[]) group by 1, 2, 3, 4",
                list(receiving_ids)):
            known.received[(r["store_id"], r["reference"], r["sku"], r["lot"])] = r["moved"]
        return judge_receiving(events, known)

    async def record(self, conn, events: list[Message]) -> None:
        """In the bridge's transaction: receivings, their lines and lot costs; loss lines; shrinkage notes."""
        received = [e for e in events if isinstance(e, GoodsReceived)]
        if received:
            await conn.executemany(
                """insert into receivings (receiving_id, event_id, store_id, supplier, note_no, received_by, wall_ms, day)
                   values ($1, $2, $3, $4, $5, $6, $7, $8::text::date) on conflict do nothing""",
                [(e.receiving_id, e.event_id, e.store_id, e.supplier, e.note_no, e.received_by, e.wall_ms,
                  chain_day(e.wall_ms)) for e in received])
            await conn.executemany(
                """insert into receiving_lines (receiving_id, n, sku, lot, use_by, qty, expected_qty, unit_cost_fen)
                   values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict do nothing""",
                [(e.receiving_id, n, x.sku, x.lot, x.use_by, x.qty, x.expected_qty, x.unit_cost_fen)
                 for e in received for n, x in enumerate(e.lines, 1)])
            await conn.executemany(
                """insert into lot_costs (store_id, sku, lot, unit_cost_fen, receiving_id, updated_ms)
                   values ($1, $2, $3, $4, $5, $6) on conflict (store_id, sku, lot) do update
                   set unit_cost_fen = excluded.unit_cost_fen, receiving_id = excluded.receiving_id,
                       updated_ms = excluded.updated_ms where lot_costs.updated_ms <= excluded.updated_ms""",
                [(e.store_id, x.sku, x.lot, x.unit_cost_fen, e.receiving_id, e.wall_ms)
                 for e in received for x in e.lines if x.qty > 0])
        losses = [e for e in events if isinstance(e, StockMoved) and e.reason == "shrinkage"]
        if losses:
            await conn.executemany(
                """insert into loss_lines (event_id, lot, store_id, sku, qty, reason, day, wall_ms)
                   values ($1, $2, $3, $4, $5, $6, $7::text::date, $8) on conflict do nothing""",
                [(e.event_id, lot, e.store_id, e.sku, qty, e.shrinkage_reason, chain_day(e.wall_ms), e.wall_ms)
                 for e in losses for lot, qty in _lost(e)])
        notes = [e for e in events if isinstance(e, ShrinkageRecorded)]
        if notes:
            await conn.executemany(
                """insert into shrinkage_notes (shrinkage_id, event_id, movement_event_id, store_id, sku, qty, reason,
                   lot, recorded_by, note, wall_ms) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                   on conflict do nothing""",
                [(e.shrinkage_id, e.event_id, e.movement_event_id, e.store_id, e.sku, e.qty, e.reason, e.lot,
                  e.recorded_by, e.note, e.wall_ms) for e in notes])


def _lost(e: StockMoved) -> list[tuple[str, int]]:
    """(lot, qty lost) of a shrinkage movement: its lots, or all unlotted (a box from before lots)."""
    lots = getattr(e, "lots", ())
    return [(d.lot, -d.delta) for d in lots if d.delta < 0] if lots else [("", -e.delta)]
