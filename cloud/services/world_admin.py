"""Changing the world while the chain runs: operator endpoints replace the catalogue, the rule book or a store.

Every change is validated whole (a rule book must still fit the catalogue), stored as a new version in
PostgreSQL, applied in this process, picked up by the other API processes (they poll the version), and sent to
every store as a command (catalogue / rule book), so tills and the mall price from the same book.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging

from cloud.messaging import to_stores
from cloud.services.verdicts import Refusal
from cloud.world import World
from protocol.errors import ProtocolError
from protocol.messages import CatalogueUpdated, RuleBookUpdated

POLL_S = 2.0
log = logging.getLogger("freshmesh.world")


class WorldAdmin:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.version = 0

    async def adopt(self, file_world: World, explicit: bool) -> None:
        """At start: an explicit --world file becomes the newest version; else the newest stored one wins."""
        row = await self.cloud.db.fetchrow("select version, data from world_versions order by version desc limit 1")
        if row is None or explicit:
            await self._store(file_world, "loaded from file")
        else:
            self.cloud.world, self.version = World.from_data(json.loads(row["data"])), row["version"]

    async def _store(self, world: World, reason: str) -> None:
        self.version = await self.cloud.db.fetchval(
            "insert into world_versions (data, reason, changed_ms) values ($1, $2, $3) returning version",
            json.dumps(world.to_data()), reason, self.cloud.now_ms())
        self.cloud.world = world

    async def change(self, part: str, value, reason: str, store_id: str | None = None) -> dict:
        data = self.cloud.world.to_data()
        if part == "catalogue":
            data["catalogue"] = value
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
        if upsert is not None:
            (r,) = await self.cloud.actors.router.load([upsert])
            if r.status != "ok":
                raise Refusal("invalid", f"store: {r.reason}")
        await self._store(world, reason)
        await self.broadcast(parts=("catalogue", "rule_book") if part != "store" else ())
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
                    self.cloud.world, self.version = World.from_data(json.loads(row["data"])), row["version"]
                    log.info("world version %d adopted", self.version)
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("world poll failed: %s", exc)
