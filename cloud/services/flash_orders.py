"""Flash orders' rows in PostgreSQL: written in one INSERT per sync (group commit), checked when a write's outcome
is unknown, looked up for same-key retries after a sale sold out, and counted for the audit.

Guarantees:
- `write` tells apart rows refused by the server (an error answer from PostgreSQL: that statement committed nothing,
  the sale is unsold) from rows whose outcome is unknown (the connection failed: they are checked later). One
  refused row does not refuse the others of its batch: after a failed batch, rows are written one by one.
- `BoughtOrders.find` costs one query per few milliseconds, however many requests ask (micro-batched).
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

import asyncpg

from actors.flash_sale import AdmittedSale

log = logging.getLogger("freshmesh.flash")

INSERT = """insert into orders (order_id, idempotency_key, kind, fulfilment, status, member_id, allocation, lines, total_fen,
                created_ms, updated_ms, sale_id)
            select o, k, 'flash', 'pickup', 'reserved', m, $5::jsonb, l::jsonb, t, $6, $6, $8
            from unnest($1::text[], $2::text[], $3::text[], $4::text[], $7::bigint[]) as x(o, k, m, l, t)
            on conflict do nothing"""
# The server's answers that say the connection or the server went away (class 08, and 57P: shut down): whether the
# statement committed is not known from them, unlike any other error answer, after which nothing was written.
GONE_SQLSTATES = ("08", "57P")
LOOKUP_WAIT_MS = 3  # same-key lookups gathered this long go as one query


def idempotency_key(sale_id: str, key: str) -> str:
    return f"flash:{sale_id}:{key}"


class FlashRows:
    """One sale's order rows."""

    def __init__(self, db_of, sale_id: str) -> None:
        self.db_of, self.sale_id = db_of, sale_id  # db_of(): the cloud's pool now (tests may swap it)

    async def write(self, sales: Sequence[tuple[AdmittedSale, str]], price_fen: int, sku: str,
                    now_ms: int) -> tuple[list[AdmittedSale], list[AdmittedSale]]:
        """Write the rows of (sale, idempotency key) pairs; returns (refused, unknown): the rows the server refused
        and those whose outcome is unknown. Every other row is written."""
        try:
            await self._insert(sales, price_fen, sku, now_ms)
            return [], []
        except asyncpg.PostgresError as exc:
            if (exc.sqlstate or "").startswith(GONE_SQLSTATES):
                log.warning("flash sale %s: order rows not confirmed (%s)", self.sale_id, exc)
                return [], [sale for sale, _ in sales]
            if len(sales) == 1:
                log.warning("flash sale %s: order row %s refused: %s", self.sale_id, sales[0][0].order_id, exc)
                return [sales[0][0]], []
        except Exception as exc:  # noqa: BLE001 - connection lost or database down: the outcome is unknown
            log.warning("flash sale %s: order rows not confirmed (%s)", self.sale_id, exc)
            return [], [sale for sale, _ in sales]
        refused: list[AdmittedSale] = []
        unknown: list[AdmittedSale] = []
        for one in sales:  # the batch was refused: find the row (or rows) at fault, write the others
            r, u = await self.write([one], price_fen, sku, now_ms)
            refused += r
            unknown += u
        return refused, unknown

    async def _insert(self, sales: Sequence[tuple[AdmittedSale, str]], price_fen: int, sku: str, now_ms: int) -> None:
        await self.db_of().execute(
            INSERT, [s.order_id for s, _ in sales], [idempotency_key(self.sale_id, k) for _, k in sales],
            [s.member for s, _ in sales],
            [json.dumps([{"sku": sku, "qty": s.qty, "amount_fen": price_fen * s.qty}]) for s, _ in sales],
            json.dumps({"sale": self.sale_id}), now_ms, [price_fen * s.qty for s, _ in sales], self.sale_id)

    async def present(self, order_ids: list[str]) -> set[str]:
        """Which of these orders have rows (raises if the database cannot answer)."""
        rows = await self.db_of().fetch("select order_id from orders where order_id = any($1::text[])", order_ids)
        return {r["order_id"] for r in rows}

    async def sold_orders(self) -> dict[str, int]:
        """Every order of this sale with a row whose units were not given back: order id -> qty."""
        rows = await self.db_of().fetch("select order_id, (lines->0->>'qty')::int as qty from orders "
                                        "where sale_id = $1 and kind = 'flash' and units_returned_ms is null",
                                        self.sale_id)
        return {r["order_id"]: r["qty"] for r in rows}

    async def units(self) -> tuple[int, int]:
        """(units in this sale's order rows still sold, of which in orders that ended unserved and are being given
        back): an order's units stay counted until they are back on sale (`units_returned_ms`)."""
        row = await self.db_of().fetchrow(
            "select coalesce(sum((lines->0->>'qty')::int), 0) as units, coalesce(sum((lines->0->>'qty')::int) "
            "filter (where status in ('expired', 'cancelled')), 0) as ending from orders "
            "where sale_id = $1 and kind = 'flash' and units_returned_ms is null", self.sale_id)
        return int(row["units"]), int(row["ending"])


class BoughtOrders:
    """Same-key lookups of already bought orders (order id -> (member, qty)), one query for all asked within
    `LOOKUP_WAIT_MS`."""

    def __init__(self, db_of) -> None:
        self.db_of = db_of
        self._asked: dict[str, asyncio.Future] = {}
        self._flusher: asyncio.Task | None = None

    async def find(self, order_id: str) -> tuple[str, int] | None:
        fut = self._asked.get(order_id)
        if fut is None:
            fut = self._asked[order_id] = asyncio.get_running_loop().create_future()
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush())
        found: tuple[str, int] | None = await asyncio.shield(fut)
        return found

    async def _flush(self) -> None:
        await asyncio.sleep(LOOKUP_WAIT_MS / 1000)
        while self._asked:
            asked, self._asked = self._asked, {}
            try:
                rows = await self.db_of().fetch(
                    "select order_id, member_id, (lines->0->>'qty')::int as qty from orders "
                    "where order_id = any($1::text[]) and kind = 'flash'", list(asked))
            except Exception as exc:  # noqa: BLE001 - every asking request hears about it
                for fut in asked.values():
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            found = {r["order_id"]: (r["member_id"], r["qty"]) for r in rows}
            for order_id, fut in asked.items():
                if not fut.done():
                    fut.set_result(found.get(order_id))


async def rows_audit(cloud, sale_id: str) -> list[str]:
    """"Units sold == units in order rows" for one sale, allowing for sales under way: read the gate, count the
    rows, read the gate again; every recorded sale of the first read must have its row, and no row may be beyond
    what the second read sold (released units never had a row; units of orders that ended unserved leave the rows'
    count once the gate has them back, and may be back there already while being given back)."""
    gate, rows = cloud.actors.flash_sale(sale_id), FlashRows(lambda: cloud.db, sale_id)
    before = await gate.status()
    units, ending = await rows.units()
    after = await gate.status()
    recorded = before["sold"] - before.get("unrecorded", 0)
    if units < recorded:
        return [f"{recorded - units} sold units have no order row (recorded {recorded}, rows {units})"]
    if units - ending > after["sold"]:
        return [f"{units - ending - after['sold']} units in order rows were not sold (sold {after['sold']}, "
                f"rows {units}, of which {ending} being given back)"]
    return []
