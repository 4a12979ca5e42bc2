"""The store's stock per lot in SQLite: each SKU's on-hand split by lot (with its use-by and, once received against a
delivery note, its unit cost), and each movement's share of every lot it touched.

Guarantees (checked by `audit`): for every SKU, Σ movements = on_hand, Σ lots = on_hand, and for every lot,
Σ its movements' shares = its on_hand. A movement whose core left its lots open is split when it commits, in the
same transaction, from the lots as they are at that moment (`split`): taking out goes first-expiry-first-out
(`protocol.lots.fefo`), putting back goes to the unlotted stock. Movements from before lots existed count as
unlotted.
"""
from __future__ import annotations

import dataclasses

from edge.core.outcome import SetLotCost
from edge.core.state import StockLevel
from protocol.lots import UNLOTTED, LotDelta, LotLevel, chain_day, fefo
from protocol.messages import StockMoved

SCHEMA = """
create table if not exists lots (sku text not null, lot text not null, use_by text not null default '',
    on_hand integer not null default 0, received_ms integer not null default 0, unit_cost_fen integer,
    primary key (sku, lot));
create table if not exists movement_lots (event_id text not null, sku text not null, lot text not null,
    delta integer not null, primary key (event_id, lot));
create index if not exists movement_lots_lot on movement_lots (sku, lot);
-- a box from before lots: what it has on hand is unlotted stock
insert into lots (sku, lot, on_hand) select sku, '', on_hand from stock s
    where not exists (select 1 from lots l where l.sku = s.sku) and on_hand <> 0;
"""
LOT_COLUMNS = "lot, use_by, on_hand"


async def lot_levels(db, sku: str) -> list[LotLevel]:
    """Every lot of `sku` on record (empty lots included: a lot that ran out still has its use-by)."""
    async with db.execute(f"select {LOT_COLUMNS} from lots where sku = ? order by use_by = '', use_by, lot",  # noqa: S608
                          (sku,)) as cur:
        return [LotLevel(*row) for row in await cur.fetchall()]


async def split(db, event: StockMoved) -> StockMoved:
    """The event with its lots: as the core named them, or split now from the SKU's lots."""
    if event.lots:
        return event
    if event.delta < 0:
        lots = fefo(await lot_levels(db, event.sku), -event.delta, chain_day(event.wall_ms))
    else:
        lots = (LotDelta(lot=UNLOTTED, delta=event.delta),)
    return dataclasses.replace(event, lots=lots)


async def move(db, event: StockMoved) -> None:
    """Each lot's share of the movement: the lot's on-hand, its use-by (the one it came in with; a lot refilled from
    nothing on hand takes the new goods' use-by - its old date was of goods long gone; a lot with stock keeps
    its date, goods of another use-by come in under a lot of their own: `protocol.lots.lot_for_arrival`) and the
    movement's journal of lots."""
    for share in event.lots:
        await db.execute(
            "insert into lots (sku, lot, use_by, on_hand, received_ms) values (?, ?, ?, ?, ?) on conflict (sku, lot) "
            "do update set on_hand = on_hand + excluded.on_hand, "
            "use_by = case when lots.use_by = '' or (lots.on_hand <= 0 and excluded.on_hand > 0 "
            "and excluded.use_by <> '') then excluded.use_by else lots.use_by end",
            (event.sku, share.lot, share.use_by, share.delta, event.wall_ms if share.delta > 0 else 0))
    await db.executemany("insert into movement_lots (event_id, sku, lot, delta) values (?, ?, ?, ?)",
                         [(event.event_id, event.sku, share.lot, share.delta) for share in event.lots])


async def set_cost(db, e: SetLotCost) -> None:
    await db.execute("insert into lots (sku, lot, unit_cost_fen) values (?, ?, ?) on conflict (sku, lot) do update "
                     "set unit_cost_fen = excluded.unit_cost_fen", (e.sku, e.lot, e.unit_cost_fen))


async def stock_view(db) -> list[dict]:
    """Every SKU's on-hand and the cloud's escrow, with its lots (those with stock, or with a use-by on record)."""
    async with db.execute("select sku, on_hand, escrow from stock order by sku") as cur:
        levels = [StockLevel(*row) for row in await cur.fetchall()]
    async with db.execute("select sku, lot, use_by, on_hand, unit_cost_fen from lots where on_hand <> 0 "
                          "order by sku, use_by = '', use_by, lot") as cur:
        lots: dict[str, list[dict]] = {}
        for sku, lot, use_by, on_hand, cost in await cur.fetchall():
            lots.setdefault(sku, []).append({"lot": lot, "use_by": use_by, "on_hand": on_hand,
                                             "unit_cost_fen": cost})
    return [{"sku": lv.sku, "on_hand": lv.on_hand, "escrow": lv.escrow, "lots": lots.get(lv.sku, [])}
            for lv in levels]


AUDITS = (
    ("Σ movements ≠ on_hand", """select s.sku, s.on_hand, coalesce(sum(m.delta), 0) from stock s
        left join movements m on m.sku = s.sku group by s.sku having s.on_hand <> coalesce(sum(m.delta), 0)"""),
    ("Σ lots ≠ on_hand", """select s.sku, s.on_hand, coalesce((select sum(l.on_hand) from lots l where l.sku = s.sku), 0)
        from stock s where s.on_hand <> coalesce((select sum(l.on_hand) from lots l where l.sku = s.sku), 0)"""),
    # a movement journaled without lot shares (from before lots) counts as unlotted
    ("Σ lot movements ≠ lot on_hand", """
        with shares as (select sku, lot, delta from movement_lots
                        union all select m.sku, '', m.delta from movements m
                        where not exists (select 1 from movement_lots x where x.event_id = m.event_id))
        select l.sku || ' lot ' || quote(l.lot), l.on_hand,
               coalesce((select sum(delta) from shares x where x.sku = l.sku and x.lot = l.lot), 0)
        from lots l where l.on_hand <> coalesce((select sum(delta) from shares x where x.sku = l.sku and x.lot = l.lot), 0)
        """),
)


async def audit(db) -> list[str]:
    """What breaks the stock invariants (DESIGN.md section 3), one line each; [] when they hold."""
    found: list[str] = []
    for what, sql in AUDITS:
        async with db.execute(sql) as cur:
            found += [f"{what}: {key} has {held}, its movements say {summed}" for key, held, summed in await cur.fetchall()]
    return found
