"""Changing the world while the chain runs: operator endpoints replace the catalogue, the rule book or a store.

Every change is validated whole (a rule book must still fit the catalogue), stored as a new version in
PostgreSQL, applied in this process, picked up by the other API processes (they poll the version), and sent to
every store as a command (catalogue / rule book), so tills and the mall price from the same book. A change made
by an operator is recorded in the operator audit log with what it changed, before and after (`changes`), in the
same transaction as the new version.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator

from cloud.messaging import to_stores
from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal
from cloud.world import World
from protocol.errors import ProtocolError
from protocol.messages import CatalogueUpdated, RuleBookUpdated

POLL_S = 2.0
STALE_TRIES = 3  # a change built on a world another process replaced meanwhile is made again on the newer one


class StaleWorld(Exception):
    """Another API process stored a newer world while this change was being made (it has been adopted)."""
WORLD_LOCK_KEY = 0x46574C44  # "FWLD": one world version stored at a time, chain-wide
log = logging.getLogger("freshmesh.world")


def _keyed(items: list, key: str) -> dict:
    return {item.get(key): item for item in items if isinstance(item, dict)}


def changes(part: str, old: dict, new: dict, store_id: str | None = None) -> tuple:
    """What a change did, as (before, after) for the audit log: a store whole; of the catalogue and the rule book
    only the products (by sku) and rules (by id) that were added, removed or changed, so an entry stays readable."""
    if part == "store":
        return _keyed(old["stores"], "store_id").get(store_id), _keyed(new["stores"], "store_id").get(store_id)
    if part == "prices":  # per-store and scheduled prices, by change id (cloud.services.prices)
        was, now = _keyed(old.get("prices", []), "change_id"), _keyed(new.get("prices", []), "change_id")
        differ = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
        return ({"prices": {k: was[k] for k in differ if k in was}}, {"prices": {k: now[k] for k in differ if k in now}})
    if part == "catalogue":
        was, now = _keyed(old["catalogue"], "sku"), _keyed(new["catalogue"], "sku")
        differ = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
        return ({"products": {k: was[k] for k in differ if k in was}},
                {"products": {k: now[k] for k in differ if k in now}})
    was_book, now_book = old["rule_book"], new["rule_book"]
    was, now = _keyed(was_book.get("rules", []), "id"), _keyed(now_book.get("rules", []), "id")
    differ = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
    rest = sorted(k for k in set(was_book) | set(now_book) if k != "rules" and was_book.get(k) != now_book.get(k))
    return ({**{k: was_book.get(k) for k in rest}, "rules": {k: was[k] for k in differ if k in was}},
            {**{k: now_book.get(k) for k in rest}, "rules": {k: now[k] for k in differ if k in now}})


class WorldAdmin:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.version = 0
        # One change at a time in this process, read, built and stored whole: a caller that builds its part from
        # the world it read (a product's new price, a stall's product) holds it across the read (`locked=True`).
        self.lock = asyncio.Lock()

    async def adopt(self, file_world: World, explicit: bool) -> None:
        """At start: an explicit --world file becomes the newest version; else the newest stored one wins."""
        row = await self.cloud.db.fetchrow("select version, data from world_versions order by version desc limit 1")
        if row is None or explicit:
            await self._store(file_world, "loaded from file", force=True)
        else:
            self.cloud.world, self.version = World.from_data(json.loads(row["data"])), row["version"]

    async def _store(self, world: World, reason: str, audit: tuple | None = None, force: bool = False) -> None:
        """A new version; `audit`: (operator, action, target, before, after), recorded with it in one transaction.

        It is built on this process's version: when another API process stored a newer one meanwhile, nothing is
        stored, the newer one is adopted here and `StaleWorld` is raised (`change` makes the change again on it): a
        change is never stored over a world it did not start from (`force`: an explicit world file at start)."""
        now = self.cloud.now_ms()
        newer = None
        async with self.cloud.db.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", WORLD_LOCK_KEY)
            if not force:
                newer = await conn.fetchrow("select version, data from world_versions where version > $1 "
                                            "order by version desc limit 1", self.version)
            if newer is not None:
                version = 0
            else:
                version = await conn.fetchval(
                    "insert into world_versions (data, reason, changed_ms) values ($1, $2, $3) returning version",
                    json.dumps(world.to_data()), reason, now)
                if audit is not None:
                    by, action, target, before, after = audit
                    await record(conn, now, by, action, target, before, after)
        if newer is not None:
            self.cloud.world, self.version = World.from_data(json.loads(newer["data"])), newer["version"]
            raise StaleWorld(self.version)
        self.version, self.cloud.world = version, world

    async def change(self, part: str, value, reason: str, store_id: str | None = None,
                     by: Operator | None = None, locked: bool = False, prices: list | None = None) -> dict:
        """`by`: the operator making the change (recorded in the audit log with its before and after); `locked`:
        the caller holds `self.lock` (it built `value` from the world it read under it); `prices`: with a catalogue
        change, the price entries replaced in the same version (a chain price set now ends the chain's entries)."""
        if locked:
            return await self._changed(part, value, reason, store_id, by, prices)
        async with self.editing():
            return await self._changed(part, value, reason, store_id, by, prices)

    async def _changed(self, part: str, value, reason: str, store_id: str | None, by: Operator | None,
                       prices: list | None) -> dict:
        """The change, made again on the newer world when another process stored one in between (adopted by
        `_store`): the part it replaces is the caller's whole; a few tries, then 409 (send it again)."""
        for _ in range(STALE_TRIES):
            try:
                return await self._change(part, value, reason, store_id, by, prices)
            except StaleWorld:
                continue
        raise Refusal("in_progress", f"the chain's world kept changing in other API processes (now version "
                                     f"{self.version}): nothing was changed; send it again")

    @contextlib.asynccontextmanager
    async def editing(self) -> AsyncIterator[None]:
        """Hold the lock, with the newest stored world adopted first: a change built in here starts from the
        chain's current world (another API process may have stored one since the last poll), not a stale one."""
        async with self.lock:
            await self._catch_up()
            yield

    async def _catch_up(self) -> None:
        row = await self.cloud.db.fetchrow("select version, data from world_versions where version > $1 "
                                           "order by version desc limit 1", self.version)
        if row is not None:
            self.cloud.world, self.version = World.from_data(json.loads(row["data"])), row["version"]
            log.info("world version %d adopted before a change", self.version)

    async def _change(self, part: str, value, reason: str, store_id: str | None, by: Operator | None,
                      prices: list | None = None) -> dict:
        old = self.cloud.world.to_data()
        data = dict(old)  # parts are replaced whole below, never changed in place: `old` stays as it was
        if part == "catalogue":
            data["catalogue"] = value
            if prices is not None:
                data["prices"] = prices
        elif part == "prices":
            data["prices"] = value
        elif part == "rule_book":
            data["rule_book"] = value
        else:
            value = {**value, "store_id": store_id}
            data["stores"] = [s for s in data["stores"] if s["store_id"] != store_id] + [value]
        try:
            world = World.from_data(data)
            upsert = None
            if part == "store":
                assert store_id is not None, "a store change names its store (the route's path parameter)"
                upsert = world.stores[store_id].router_command(f"store:{store_id}:{self.cloud.ids.new()}")
        except ProtocolError as exc:
            raise Refusal("invalid", f"{part}: {exc}") from None
        if part == "rule_book" and world.rule_book.version <= (in_force := self.cloud.world.rule_book.version):
            # a store keeps the newest book it was sent: an older number would be stored here and ignored there
            raise Refusal("invalid", f"rule_book: version {world.rule_book.version} is not newer than version "
                                     f"{in_force} in force (a store keeps the newest book it was sent)")
        if upsert is not None:
            (r,) = await self.cloud.actors.router.load([upsert])
            if r.status != "ok":
                raise Refusal("invalid", f"store: {r.reason}")
        audit = None
        if by is not None:
            before, after = changes(part, old, world.to_data(), store_id)
            target = f"store:{store_id}" if part == "store" else part
            audit = (by, f"{part}.change", target, before, after)
        await self._store(world, reason, audit)
        await self.broadcast(parts=() if part == "store" else ("catalogue",) if part == "prices" else
                             ("catalogue", "rule_book"))
        return {"version": self.version, "stores": len(world.stores), "products": len(world.catalogue),
                "rule_book_version": world.rule_book.version}

    async def broadcast(self, parts=("catalogue", "rule_book"), stores=None) -> None:
        """Send the catalogue and/or rule book to stores (all by default); a store keeps only newer versions."""
        world = self.cloud.world
        payloads = {"catalogue": (CatalogueUpdated, json.dumps(world.catalogue.to_data()).encode()),
                    "rule_book": (RuleBookUpdated, json.dumps(world.rule_data).encode())}
        for store_id in stores or list(world.stores):
            for part in parts:
                cls, payload = payloads[part]
                if part == "catalogue" and world.catalogue.prices:  # cut for the store: its own prices only
                    payload = json.dumps(world.catalogue.payload_for(store_id)).encode()
                version = self.version if part == "catalogue" else world.rule_book.version
                await to_stores.send(self.cloud, store_id, functools.partial(cls, version=version, payload=payload))

    async def follow(self) -> None:
        """Other API processes: reload when a newer version is stored."""
        while True:
            await asyncio.sleep(POLL_S)
            try:
                row = await self.cloud.db.fetchrow("select version, data from world_versions where version > $1 "
                                                   "order by version desc limit 1", self.version)
                if row is not None:
                    async with self.lock:  # never in the middle of a change built on the world it read
                        self.cloud.world, self.version = World.from_data(json.loads(row["data"])), row["version"]
                    log.info("world version %d adopted", self.version)
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("world poll failed: %s", exc)
