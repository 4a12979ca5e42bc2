"""Flash-sale orders as real orders of real stores: the sale's units come out of the stores' online escrow, each
accepted order is assigned to a store (off the hot path, in batches), and the units of an order that ends unserved
go back to the sale.

- At creation (`take_escrow`) the sale holds one StockPool reservation per chosen store, its *block*
  (`flash:<sale>:<store>`), together exactly the sale's quantity, living until the sale's end plus the payment time
  plus a margin; when the escrow cannot cover the quantity the sale is refused, naming what each store has.
- The assigner (`assign_due`, every `ASSIGN_EVERY_MS` in the background process) takes the new flash order rows of
  such sales, carves each order's reservation out of a block (the store nearest to the member's last known
  location, else the fullest block; `actors/stock_blocks.py`), and makes the row an order of that store: its
  allocation, a pickup code, a payment deadline (`reservation_ttl_ms`, never past its block's end), journaled as
  the order's `created` note. A round's orders are written in one transaction (a sale's crowd costs PostgreSQL a
  few statements per round, not per order); an order cancelled between its carve and the write gets nothing and
  its carve goes back to its block. From there it is paid, sent to its store and picked up like any pickup order.
- `give_back` (an order that expired unpaid or was cancelled): its carved units go back to its block (or to escrow
  once the block ended) and its units back on sale in the FlashSaleGate (remaining grows, the member's count falls),
  then the row is marked (`units_returned_ms`); `sweep_returns` finishes any give-back a crash left half-done.
  Units never sold stay in the blocks, which expire at their end: the StockPool returns them to the stores' escrow.

Sales opened without stores (as before this module) keep sale-only rows: never assigned, never expiring.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass

import asyncpg

from actors.flash_sale import ReturnUnits
from actors.order_router import distance_m
from actors.stock_blocks import Carve, Uncarve
from actors.stock_pool import Cancel, Reserve
from cloud.services import order_journal as journal
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle

log = logging.getLogger("freshmesh.flash")
BLOCK_MARGIN_MS = 60_000  # a block outlives the sale's end plus the payment time by this (assignment may lag)
ASSIGN_EVERY_MS = 200
ASSIGN_BATCH_MAX = 500
RETURN_BATCH_MAX = 200
ENDED_UNSERVED = (lifecycle.EXPIRED, lifecycle.CANCELLED)  # a flash order ending so gives its units back


def block_id(sale_id: str, store: str) -> str:
    return f"flash:{sale_id}:{store}"


def carved_id(order_id: str) -> str:
    return f"flash-order:{order_id}"


def assigned(row) -> bool:
    """A flash order row made an order of a store (its allocation names the store, not the sale)."""
    return "sale" not in json.loads(row["allocation"])


@dataclass(frozen=True, slots=True)
class Assignment:
    """A flash order carved from a store's block, to be written as an order of that store."""
    order_id: str
    sale_id: str
    sku: str
    qty: int
    store: str
    reservation_id: str
    at_ms: int
    pays_by_ms: int  # the payment deadline: the reservation's time, never past its block's end
    pickup_code: str

    def allocation(self) -> dict:
        return {self.store: [{"sku": self.sku, "qty": self.qty, "reservation_id": self.reservation_id}]}


def split(quantity: int, available: dict[str, int]) -> dict[str, int]:
    """The units each store's block takes: fullest stores first, so as few stores as possible hold the sale."""
    plan: dict[str, int] = {}
    left = quantity
    for store, units in sorted(available.items(), key=lambda kv: (-kv[1], kv[0])):
        if left <= 0:
            break
        take = min(units, left)
        if take > 0:
            plan[store] = take
            left -= take
    return plan


class FlashStores:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self._blocks: dict[str, tuple[str, dict[str, int]]] = {}  # sale id -> (sku, units per store's block)

    # ---- at sale creation ----------------------------------------------------------------------------------
    def stores_of(self, spec: list[str] | str) -> list[str]:
        world = self.cloud.world.stores
        if spec == "chain":  # every store open for online orders (one HQ closed takes none)
            return sorted(s for s, store in world.items() if store.open)
        if isinstance(spec, str) or not spec:
            raise Refusal("invalid", 'stores: a list of store ids, or "chain" for every store')
        unknown = sorted(s for s in spec if s not in world)
        if unknown:
            raise Refusal("invalid", f"stores: unknown store(s) {', '.join(unknown)}")
        closed = sorted(s for s in set(spec) if not world[s].open)
        if closed:
            raise Refusal("invalid", f"stores: closed by head office, taking no online orders: {', '.join(closed)}")
        return sorted(set(spec))

    async def take_escrow(self, sale_id: str, sku: str, quantity: int, stores: list[str], ends_ms: int) -> dict[str, int]:
        """The sale's blocks, reserved from the stores' escrow: {store: units}; a Refusal if they cannot cover it."""
        cloud = self.cloud
        found = await cloud.actors.stock_pool.availability(stores, [sku])
        available = {s: units.get(sku, 0) for s, units in found.items()}
        plan = split(quantity, available)
        if sum(plan.values()) < quantity:
            raise Refusal("out_of_stock", f"the online escrow of {sku} at the chosen stores is {sum(available.values())}, "
                          f"short of the sale's quantity {quantity}: "
                          + ", ".join(f"{s} {n}" for s, n in sorted(available.items())), available=available)
        ttl = ends_ms + cloud.reservation_ttl_ms + BLOCK_MARGIN_MS - cloud.now_ms()
        done: list[str] = []
        for store, units in plan.items():
            rid = block_id(sale_id, store)
            r = await cloud.actors.stock_pool.send(Reserve(id=f"reserve:{rid}", reservation_id=rid,
                                                           order_id=f"sale:{sale_id}", store=store, sku=sku, qty=units,
                                                           ttl_ms=ttl))
            if not r.succeeded:
                await self.release_blocks(sale_id, sku, done)
                raise Refusal("out_of_stock", f"the escrow of {sku} at {store} was taken meanwhile "
                              f"({r.settled.values.get('available', 0)} left, {units} wanted); try again")
            done.append(store)
        return plan

    async def release_blocks(self, sale_id: str, sku: str, stores: list[str]) -> None:
        for store in stores:
            rid = block_id(sale_id, store)
            await self.cloud.actors.stock_pool.send(Cancel(id=f"cancel:{rid}", reservation_id=rid, sku=sku))

    async def blocks_of(self, sale_id: str) -> dict[str, int]:
        """The units each store's block took at the sale's creation ({}: a sale-only sale, or no such sale)."""
        if sale_id not in self._blocks:  # a sale's config never changes: read once per process
            config = await self.cloud.db.fetchval("select config from flash_sales where sale_id = $1", sale_id)
            if config is None:
                return {}
            config = json.loads(config) if isinstance(config, str) else config
            self._blocks[sale_id] = (config["sku"], config.get("blocks") or {})
        return self._blocks[sale_id][1]

    async def _sale(self, sale_id: str) -> tuple[str, tuple[str, ...]] | None:
        blocks = await self.blocks_of(sale_id)
        return (self._blocks[sale_id][0], tuple(sorted(blocks))) if blocks else None

    # ---- assignment (background) ---------------------------------------------------------------------------
    async def assign_due(self) -> int:
        """New flash orders of sales with blocks, each made an order of one store; returns how many. Each order is
        carved from a block on its own (the StockPool batches the carves); the round's orders are then written in one
        transaction (`_record`), which is what a flash sale's crowd costs PostgreSQL per order."""
        rows = await self.cloud.db.fetch(
            """select o.order_id, o.member_id, o.sale_id, o.lines from orders o join flash_sales s using (sale_id)
               where o.kind = 'flash' and o.status = 'reserved' and o.expires_ms is null and s.config ? 'blocks'
               order by o.created_ms limit $1""", ASSIGN_BATCH_MAX)
        if not rows:
            return 0
        places = await self._members_places([r["member_id"] for r in rows])
        carved = await asyncio.gather(*(self._carve(row, places.get(row["member_id"])) for row in rows),
                                      return_exceptions=True)
        for row, outcome in zip(rows, carved, strict=True):
            if isinstance(outcome, BaseException):  # one order's trouble never stops the others: retried next round
                log.warning("flash order %s not assigned: %s", row["order_id"], outcome)
        made = [a for a in carved if isinstance(a, Assignment)]
        if not made:
            return 0
        try:
            return await self._record(made)
        except asyncpg.UniqueViolationError:  # one was journaled before (a crash between journal and update?):
            # one at a time, where a duplicate note answers its first step and the others are written all the same
            written = 0
            for a in made:
                try:
                    written += await self._record([a])
                except asyncpg.UniqueViolationError:
                    log.warning("flash order %s: its assignment was journaled before; left for the next round",
                                a.order_id)
            return written

    async def _members_places(self, members: list[str]) -> dict[str, tuple[float, float]]:
        """Each member's last known location (from their latest order that had one)."""
        rows = await self.cloud.db.fetch(
            """select distinct on (member_id) member_id, location from orders
               where member_id = any($1::text[]) and location is not null order by member_id, created_ms desc""",
            sorted(set(members)))
        places = {}
        for r in rows:
            loc = json.loads(r["location"]) if isinstance(r["location"], str) else r["location"]
            if loc and "lat" in loc and "lon" in loc:
                places[r["member_id"]] = (float(loc["lat"]), float(loc["lon"]))
        return places

    async def _carve(self, row, place: tuple[float, float] | None) -> Assignment | None:
        """The order's units carved out of a block (the nearest store's, else the fullest): its assignment, still
        to be written; None when it cannot be served (then it expired and its units went back on sale)."""
        cloud, order_id, sale_id = self.cloud, row["order_id"], row["sale_id"]
        sale = await self._sale(sale_id)
        if sale is None:
            return None
        sku, stores = sale
        qty = json.loads(row["lines"])[0]["qty"]
        if place is not None:
            world = cloud.world.stores
            stores = tuple(sorted(stores, key=lambda s: distance_m(place[0], place[1], world[s].lat, world[s].lon)))
        rid = carved_id(order_id)
        r = await cloud.actors.stock_pool.send(Carve(id=f"carve:{order_id}", reservation_id=rid, order_id=order_id,
                                                     sku=sku, qty=qty, blocks=tuple(block_id(sale_id, s) for s in stores),
                                                     fullest=place is None))
        if r.settled.status == "rejected":  # no store's block has the units together (they are split, or the
            # blocks ended): the order cannot be served, and waiting would keep it open forever. It ends now and its
            # units go back on sale, where they can sell again in smaller orders
            left = ", ".join(f"{block.rsplit(':', 1)[-1]} {n}" for block, n in r.settled.values.get("left", {}).items())
            reason = f"no store of the sale has {qty} units left together ({left or 'its stores hold none now'})"
            try:
                await journal.advance(cloud.db, order_id, "expire", cloud.now_ms(), detail={"reason": reason},
                                      only_from=(lifecycle.RESERVED,))
            except lifecycle.IllegalTransition:
                pass  # cancelled meanwhile: its units are given back all the same
            await self.give_back(order_id)
            return None
        if not r.succeeded:
            raise RuntimeError(f"flash order {order_id} not carved from sale {sale_id}'s blocks: {r.settled.reason}")
        now = cloud.now_ms()
        return Assignment(order_id=order_id, sale_id=sale_id, sku=sku, qty=qty, store=r.settled.values["store"],
                          reservation_id=rid, at_ms=now,
                          pays_by_ms=min(now + cloud.reservation_ttl_ms, r.settled.values["expires_ms"] - 1),
                          pickup_code=f"{secrets.randbelow(10**8):08d}")

    async def _record(self, made: list[Assignment]) -> int:
        """Write carved assignments in one transaction: each order still new (reserved, not yet assigned) becomes an
        order of its store with its `created` note; the carve of one cancelled meanwhile goes back to its block.
        Rows are locked in id order, so two rounds (or a round and a customer's cancel) never deadlock."""
        by_id = {a.order_id: a for a in made}
        async with self.cloud.db.acquire() as conn, conn.transaction():
            rows = await conn.fetch("select order_id, status, allocation from orders where order_id = any($1::text[]) "
                                    "order by order_id for update", sorted(by_id))
            fresh = [by_id[r["order_id"]] for r in rows if r["status"] == lifecycle.RESERVED and not assigned(r)]
            # ended before it was assigned: the carve is this round's to give back (one assigned by another round,
            # then paid or cancelled, keeps its carve: its own give-back or pickup deals with it)
            gone = [by_id[r["order_id"]] for r in rows if r["status"] != lifecycle.RESERVED and not assigned(r)]
            if fresh:
                await conn.execute(
                    """update orders o set allocation = v.allocation::jsonb, pickup_code = v.code, expires_ms = v.pays_by,
                              slot_start_ms = v.at, updated_ms = v.at
                       from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
                            as v(order_id, allocation, code, pays_by, at)
                       where o.order_id = v.order_id""",
                    [a.order_id for a in fresh], [json.dumps(a.allocation()) for a in fresh],
                    [a.pickup_code for a in fresh], [a.pays_by_ms for a in fresh], [a.at_ms for a in fresh])
                await journal.note_each(conn, [
                    journal.Note(a.order_id, "created", lifecycle.RESERVED, a.at_ms, store=a.store, key="flash-assigned",
                                 detail={"sale_id": a.sale_id, "store": a.store, "pays_by_ms": a.pays_by_ms})
                    for a in fresh])
        # cancelled meanwhile: the carve goes back to its block (an order assigned by another round keeps its own)
        await asyncio.gather(*(self.cloud.actors.stock_pool.send(Uncarve(
            id=f"uncarve:{a.order_id}", reservation_id=a.reservation_id, block_id=block_id(a.sale_id, a.store),
            sku=a.sku)) for a in gone))
        return len(fresh)

    # ---- units back to the sale ----------------------------------------------------------------------------
    async def give_back(self, order_id: str) -> bool:
        """An order that ended unserved: its units back to its block and on sale (idempotent; True once done)."""
        cloud = self.cloud
        row = await cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
        if row is None or row["kind"] != "flash" or row["status"] not in ENDED_UNSERVED or row["units_returned_ms"]:
            return False
        allocation = json.loads(row["allocation"])
        if "sale" not in allocation:
            (store, lines), = allocation.items()
            line = lines[0]
            r = await cloud.actors.stock_pool.send(Uncarve(id=f"uncarve:{order_id}", reservation_id=line["reservation_id"],
                                                           block_id=block_id(row["sale_id"], store), sku=line["sku"]))
            if not r.succeeded:
                raise RuntimeError(f"flash order {order_id}: units not given back to its block ({r.settled.reason})")
        # the command id changes by the second: the gate may answer "not recorded yet" (retried), and returning is
        # idempotent by the order itself (an order returned once is no longer sold)
        r = await cloud.actors.flash_sale(row["sale_id"]).return_units(
            ReturnUnits(id=f"return:{order_id}:{cloud.now_ms() // 1000}", order_id=order_id))
        if not r.succeeded:
            log.info("flash order %s: units not back on sale yet (%s)", order_id, r.settled.reason)
            return False
        await cloud.db.execute("update orders set units_returned_ms = $2 where order_id = $1", order_id, cloud.now_ms())
        return True

    async def sweep_returns(self) -> int:
        rows = await _ended_unreturned(self.cloud)
        returned = 0
        for row in rows:
            try:
                returned += await self.give_back(row["order_id"])
            except Exception as exc:  # noqa: BLE001 - the next round tries again; the others go on
                log.warning("flash order %s: units not given back (%s)", row["order_id"], exc)
        return returned

    async def payable(self, row) -> None:
        """A flash order of a sale with stores is paid only once it is an order of its store."""
        if not assigned(row) and await self._sale(row["sale_id"]) is not None:
            raise Refusal("order_state", f"order {row['order_id']} is being assigned to a store (moments after the "
                                         "sale accepted it); pay again shortly")


async def _ended_unreturned(cloud) -> list:
    return await cloud.db.fetch(
        "select order_id from orders where kind = 'flash' and units_returned_ms is null "
        "and status = any($1::text[]) order by updated_ms limit $2", list(ENDED_UNSERVED), RETURN_BATCH_MAX)
