"""HQ's allocation ratio per store and SKU (or category): the share of the store's on-hand offered online.

Guarantees:
- Only an hq_admin sets a ratio (`protocol.roles`: "allocation.change"); each change is written with its audit
  entry (who, before, after) in one PostgreSQL transaction, under a version that grows per (store, scope, key).
- The StockPool's ratio follows (`SetRatio`, for the SKU, or each SKU of the category that has no ratio of its
  own at the store), and the store is told by a cloud message (`AllocationSet`, its event id kept with the row):
  the store applies it once, keeps only the newest version, and rebalances its escrow to it (`edge.core.lending`).
  A store that could not be told now is told again when the cloud starts (`resend`), under the same event id.
- A SKU's own ratio wins over its category's; with neither, the store's configured default applies
  (`protocol.policy.DEFAULT_ONLINE_RATIO_BP`).
"""
from __future__ import annotations

import functools
import logging
from typing import Any

from actors.stock_pool import SetRatio
from cloud.messaging import to_stores
from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal
from protocol.clock import to_rfc3339
from protocol.errors import ProtocolError
from protocol.escrow_messages import AllocationSet, check_scope_key
from protocol.policy import DEFAULT_ONLINE_RATIO_BP

log = logging.getLogger("freshmesh.allocations")


def _row_json(row) -> dict[str, Any]:
    return {"scope": row["scope"], row["scope"]: row["key"], "ratio_bp": row["ratio_bp"], "version": row["version"],
            "updated_at": to_rfc3339(row["updated_ms"]), "updated_by": row["updated_by"]}


def parse_target(cloud, store_id: str, body: dict, of_what: str) -> tuple[str, str, int]:
    """A ratio's body, checked: exactly one of "sku" or "category" (known), and "ratio_bp" 0..10000 (`of_what`
    says of what, in the refusal); the store must exist."""
    catalogue = cloud.world.catalogue
    if store_id not in cloud.world.stores:
        raise Refusal("not_found", f"no store {store_id}")
    named = [k for k in ("sku", "category") if k in body]
    if len(named) != 1:
        raise Refusal("invalid", "name exactly one of \"sku\" or \"category\"")
    scope = named[0]
    key, ratio = body[scope], body.get("ratio_bp")
    if not isinstance(key, str):
        raise Refusal("invalid", f"{scope}: a string")
    try:
        check_scope_key(scope, key, scope)
    except ProtocolError as exc:
        raise Refusal("invalid", str(exc)) from None
    if scope == "sku" and key not in catalogue:
        raise Refusal("invalid", f"sku: unknown product {key!r}")
    if scope == "category" and key not in catalogue.categories:
        known = ", ".join(sorted(catalogue.categories))
        raise Refusal("invalid", f"category: unknown category {key!r} (one of {known})")
    if isinstance(ratio, bool) or not isinstance(ratio, int) or not 0 <= ratio <= 10_000:
        raise Refusal("invalid", f"ratio_bp: an integer 0..10000 (basis points {of_what})")
    extra = set(body) - {scope, "ratio_bp"}
    if extra:
        raise Refusal("invalid", f"unknown field(s) {sorted(extra)}")
    return scope, key, ratio


class Allocations:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def set(self, store_id: str, body: dict, by: Operator) -> dict[str, Any]:
        scope, key, ratio = parse_target(self.cloud, store_id, body, "of on-hand offered online")
        cloud, now = self.cloud, self.cloud.now_ms()
        async with cloud.db.acquire() as conn, conn.transaction():
            before = await conn.fetchrow("select * from store_allocations where store_id = $1 and scope = $2 "
                                         "and key = $3 for update", store_id, scope, key)
            row = await conn.fetchrow(
                """insert into store_allocations (store_id, scope, key, ratio_bp, version, message_id, updated_ms,
                       updated_by) values ($1, $2, $3, $4, 1, $5, $6, $7)
                   on conflict (store_id, scope, key) do update set ratio_bp = excluded.ratio_bp,
                       version = store_allocations.version + 1, message_id = excluded.message_id,
                       updated_ms = excluded.updated_ms, updated_by = excluded.updated_by
                   returning *""", store_id, scope, key, ratio, cloud.ids.new(), now, by.username)
            await record(conn, now, by, "allocation.set", f"{store_id}/{scope}:{key}",
                         None if before is None else {"ratio_bp": before["ratio_bp"], "version": before["version"]},
                         {"ratio_bp": ratio, "version": row["version"]})
        await self._set_ratios(row)
        told = await self._tell(row)
        return {"store_id": store_id, **_row_json(row), "store_told": told}

    async def _set_ratios(self, row) -> None:
        """The StockPool's ratio for the SKU, or for each SKU of the category without a ratio of its own here."""
        store, scope, key = row["store_id"], row["scope"], row["key"]
        if scope == "sku":
            skus = [key]
        else:
            own = {r["key"] for r in await self.cloud.db.fetch(
                "select key from store_allocations where store_id = $1 and scope = 'sku'", store)}
            skus = sorted(sku for sku, p in self.cloud.world.catalogue.by_sku.items()
                          if p.category == key and sku not in own)
        for sku in skus:
            await self.cloud.actors.stock_pool.send(SetRatio(id=f"ratio:{row['message_id']}:{sku}", store=store,
                                                             sku=sku, ratio_bp=row["ratio_bp"]))

    async def _tell(self, row) -> bool:
        """The store is sent the allocation (applied once there: the event id is the row's); False if NATS failed
        (the next `resend` tells it)."""
        try:
            await to_stores.send(self.cloud, row["store_id"], functools.partial(
                AllocationSet, scope=row["scope"], key=row["key"], ratio_bp=row["ratio_bp"], version=row["version"]),
                event_id=row["message_id"])
        except Exception as exc:  # noqa: BLE001 - kept in PostgreSQL: told again at the next start
            log.warning("allocation %s/%s:%s not sent to the store now: %s", row["store_id"], row["scope"], row["key"],
                        exc)
            return False
        return True

    async def resend(self) -> None:
        """Every allocation to its store again (a store keeps each once, by event id, and only newer versions)."""
        for row in await self.cloud.db.fetch("select * from store_allocations order by store_id, scope, key"):
            if row["store_id"] in self.cloud.world.stores:
                await self._tell(row)

    async def view(self, store_id: str) -> dict[str, Any]:
        if store_id not in self.cloud.world.stores:
            raise Refusal("not_found", f"no store {store_id}")
        rows = await self.cloud.db.fetch("select * from store_allocations where store_id = $1 order by scope desc, key",
                                         store_id)
        return {"store_id": store_id, "default_ratio_bp": DEFAULT_ONLINE_RATIO_BP,
                "allocations": [_row_json(r) for r in rows]}
