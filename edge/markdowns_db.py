"""The store's record of the markdown labels it printed (SQLite), and the reads markdowns decide on.

A label's barcode carries only a PLU and a price; the registry says what else it stands for (lot, use-by, the rule,
the price it was marked down from, the package's weight), so that the till sells it at its label price as a
markdown, takes the right grams and lot off the shelf, and reports the markdown with the sale. The registry is the
box's own: it works with the cloud unreachable. A row stands for its code only on the chain day it was printed
(`label_for`; the next day the same PLU and price is an ordinary label again); one code is one row - a re-print
of the same label the same day counts up, another label with the same code that day is refused
(`edge.core.markdowns.registry_clash`), and the first print on a later day replaces the row. Rows are pruned after
`LABEL_KEEP_DAYS`. Registered with `edge.store_db` (its schema, created by StoreDb.open).
"""
from __future__ import annotations

from edge.core.markdowns import Label, LotInStock, registry_clash
from edge.core.outcome import Refused
from protocol.barcodes import normalise
from protocol.errors import ProtocolError
from protocol.lots import chain_day

LABEL_KEEP_DAYS = 14
DAY_MS = 86_400_000

SCHEMA = """
create table if not exists markdown_labels (code text primary key, sku text not null, lot text not null,
    use_by text not null, rule_id text not null, rule_name text not null, was_fen integer not null,
    now_fen integer not null, weight_g integer not null, printed integer not null, printed_by text not null,
    printed_ms integer not null);
"""


async def record_labels(db, label: Label, count: int, printed_by: str, now_ms: int) -> None:
    """The label's row, in one transaction with the pruning of old rows (`db`: the actor's writer connection).
    Refused (409, nothing written) when its code already stands for another label today."""
    await db.execute("begin immediate")
    try:
        await db.execute("delete from markdown_labels where printed_ms < ?", (now_ms - LABEL_KEEP_DAYS * DAY_MS,))
        registered, printed_ms = await _row(db, label.code)
        why = registry_clash(registered, chain_day(printed_ms), label, chain_day(now_ms))
        if why:
            raise Refused(409, why)
        await db.execute(
            "insert into markdown_labels (code, sku, lot, use_by, rule_id, rule_name, was_fen, now_fen, weight_g, "
            "printed, printed_by, printed_ms) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (code) do update "
            "set sku = excluded.sku, lot = excluded.lot, use_by = excluded.use_by, rule_id = excluded.rule_id, "
            "rule_name = excluded.rule_name, was_fen = excluded.was_fen, now_fen = excluded.now_fen, "
            "weight_g = excluded.weight_g, printed = markdown_labels.printed + excluded.printed, "
            "printed_by = excluded.printed_by, printed_ms = excluded.printed_ms",
            (label.code, label.sku, label.lot, label.use_by, label.rule_id, label.rule_name, label.was_fen,
             label.now_fen, label.weight_g, count, printed_by, now_ms))
    except BaseException:
        await db.execute("rollback")
        raise
    await db.execute("commit")


async def _row(db, code: str) -> tuple[Label | None, int]:
    async with db.execute("select code, sku, lot, use_by, rule_id, rule_name, was_fen, now_fen, weight_g, printed_ms "
                          "from markdown_labels where code = ?", (code,)) as cur:
        row = await cur.fetchone()
    return (Label(*row[:-1]), int(row[-1])) if row else (None, 0)


async def label_for(db, raw_code: str, now_ms: int) -> Label | None:
    """The markdown label printed here today that a scanned code is, or None (not one of ours, printed on an earlier
    chain day, or not a code at all: the till's normal reading says what is wrong with it)."""
    try:
        code = normalise(raw_code)
    except ProtocolError:
        return None
    label, printed_ms = await _row(db, code)
    return label if label is not None and chain_day(printed_ms) == chain_day(now_ms) else None


async def labels_printed(db) -> int:
    async with db.execute("select coalesce(sum(printed), 0) from markdown_labels") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def lot_in_stock(db, sku: str, lot: str) -> LotInStock | None:
    async with db.execute("select sku, lot, use_by, on_hand from lots where sku = ? and lot = ? and on_hand > 0",
                          (sku, lot)) as cur:
        row = await cur.fetchone()
    return LotInStock(*row) if row else None


async def lots_in_stock(db) -> list[LotInStock]:
    async with db.execute("select sku, lot, use_by, on_hand from lots where on_hand > 0 order by sku, lot") as cur:
        return [LotInStock(*row) for row in await cur.fetchall()]
