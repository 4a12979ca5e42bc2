"""HQ's share of a store's online escrow for each marketplace channel (`mkt:<marketplace>`), per SKU or category.

The store grants the cloud one online escrow per SKU (its allocation ratio of on-hand, `cloud/services/allocations.py`);
the mall sells from it, and each marketplace the store sells on gets its own share of it, so that no channel
oversells another (`actors/stock_pool.py`, channels).

Guarantees:
- Only an hq_admin sets a share ("allocation.change"); each change is written with its audit entry (who, before,
  after) in one PostgreSQL transaction, under a version that grows per (store, channel, scope, key).
- Per SKU, a channel's share is the SKU's own row, else its category's. For no SKU do a store's channels add up past
  10000: a change that would is refused before anything is written, naming the SKU and each channel's share.
- The StockPool follows (`SetChannelRatio` for each SKU the row covers, under ids derived from the row's version:
  applied once), one follower per store at a time reading the newest rows (two concurrent changes end on the
  newer), and again at every start (`resend`). The store is not told: the share divides what the store
  granted the cloud, not the store's stock.
"""
from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from actors.stock_pool import SetChannelRatio
from cloud.services.allocations import parse_target
from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal
from protocol.clock import to_rfc3339

log = logging.getLogger("freshmesh.channel_shares")
MARKETPLACE = re.compile(r"^[a-z0-9_-]{1,24}$")

MIGRATION_51 = (51, "HQ's share of a store's online escrow per marketplace channel (cloud/services/channel_shares.py)",
                """
    create table if not exists channel_shares (
        store_id    text not null,
        channel     text not null check (channel ~ '^mkt:[a-z0-9_-]{1,24}$'),
        scope       text not null check (scope in ('sku', 'category')),
        key         text not null,
        ratio_bp    int not null check (ratio_bp between 0 and 10000),  -- of the store's online escrow
        version     bigint not null,                 -- grows per (store, channel, scope, key)
        updated_ms  bigint not null,
        updated_by  text,
        primary key (store_id, channel, scope, key)
    );
""")


def channel_of(marketplace: str) -> str:
    if not isinstance(marketplace, str) or not MARKETPLACE.match(marketplace):
        raise Refusal("invalid", "marketplace: its id, 1 to 24 lower-case letters, digits, _ or -")
    return f"mkt:{marketplace}"


def _row_json(row) -> dict[str, Any]:
    return {"channel": row["channel"], "marketplace": row["channel"].removeprefix("mkt:"), "scope": row["scope"],
            row["scope"]: row["key"], "ratio_bp": row["ratio_bp"], "version": row["version"],
            "updated_at": to_rfc3339(row["updated_ms"]), "updated_by": row["updated_by"]}


def _command_id(row, sku: str) -> str:
    plain = f"share:{row['store_id']}:{row['channel']}:{row['version']}:{row['scope']}:{sku}"
    return plain if len(plain) <= 64 else "share:" + hashlib.blake2b(plain.encode(), digest_size=20).hexdigest()


class ChannelShares:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    def _skus(self, scope: str, key: str) -> list[str]:
        """The SKUs a row covers now (a SKU no longer in the catalogue: none)."""
        if scope == "sku":
            return [key] if key in self.cloud.world.catalogue else []
        return sorted(sku for sku, p in self.cloud.world.catalogue.by_sku.items() if p.category == key)

    def _effective(self, rows: list[dict], sku: str) -> dict[str, int]:
        """Each channel's share of one SKU: its own row's, else its category's."""
        category = self.cloud.world.catalogue.get(sku).category
        out: dict[str, int] = {}
        for r in rows:
            if r["scope"] == "category" and r["key"] == category:
                out.setdefault(r["channel"], r["ratio_bp"])
        for r in rows:
            if r["scope"] == "sku" and r["key"] == sku:
                out[r["channel"]] = r["ratio_bp"]
        return out

    async def set(self, store_id: str, marketplace: str, body: dict, by: Operator) -> dict[str, Any]:
        channel = channel_of(marketplace)
        scope, key, ratio = parse_target(self.cloud, store_id, body, "of the store's online escrow")
        cloud, now = self.cloud, self.cloud.now_ms()
        async with cloud.db.acquire() as conn, conn.transaction():
            # one change of a store's shares at a time: the sum is checked against what is in force
            await conn.execute("select pg_advisory_xact_lock(hashtext('channel_shares:' || $1))", store_id)
            rows = [dict(r) for r in await conn.fetch("select * from channel_shares where store_id = $1", store_id)]
            before = next((r for r in rows if (r["channel"], r["scope"], r["key"]) == (channel, scope, key)), None)
            after = [r for r in rows if r is not before] + [{"channel": channel, "scope": scope, "key": key,
                                                             "ratio_bp": ratio}]
            for sku in self._skus(scope, key):
                shares = self._effective(after, sku)
                if sum(shares.values()) > 10_000:
                    listed = ", ".join(f"{ch} {bp / 100:g}%" for ch, bp in sorted(shares.items()))
                    raise Refusal("invalid", f"{sku}: the store's marketplace shares would add up past 100% of its "
                                             f"online escrow ({listed})", shares=shares, sku=sku)
            row = await conn.fetchrow(
                """insert into channel_shares (store_id, channel, scope, key, ratio_bp, version, updated_ms, updated_by)
                   values ($1, $2, $3, $4, $5, 1, $6, $7)
                   on conflict (store_id, channel, scope, key) do update set ratio_bp = excluded.ratio_bp,
                       version = channel_shares.version + 1, updated_ms = excluded.updated_ms,
                       updated_by = excluded.updated_by
                   returning *""", store_id, channel, scope, key, ratio, now, by.username)
            await record(conn, now, by, "channel_share.set", f"{store_id}/{channel}/{scope}:{key}",
                         None if before is None else {"ratio_bp": before["ratio_bp"], "version": before["version"]},
                         {"ratio_bp": ratio, "version": row["version"]})
        escrow = await self._follow_newest(store_id, channel, scope, key)
        return {"store_id": store_id, **_row_json(row), "escrow": escrow}

    async def _follow_newest(self, store_id: str, channel: str, scope: str, key: str) -> dict[str, int]:
        """The StockPool follows the store's shares as they are now, one follower of a store at a time: two changes
        committed in one order but followed in the other would leave the pool on the older one, or refuse the newer
        (another channel's older, larger share still in the pool). Under the lock each follower reads the newest rows
        and sends every row covering the changed row's SKUs, smaller shares first (room for the larger): the last
        to follow applies the newest (each row's ids derive from its version: one applied before is not again).
        Answers the changed row's SKUs' shares of the escrow now."""
        async with self.cloud.db.acquire() as conn:
            await conn.execute("select pg_advisory_lock(hashtext('channel_shares_follow:' || $1))", store_id)
            try:
                rows = [dict(r) for r in await conn.fetch("select * from channel_shares where store_id = $1",
                                                          store_id)]
                newest = next(r for r in rows if (r["channel"], r["scope"], r["key"]) == (channel, scope, key))
                skus = set(self._skus(scope, key))
                catalogue = self.cloud.world.catalogue
                touching = [r for r in rows if r is not newest and (
                    (r["scope"] == "sku" and r["key"] in skus)
                    or (r["scope"] == "category" and any(catalogue.get(s).category == r["key"] for s in skus)))]
                for other in sorted(touching, key=lambda r: r["ratio_bp"]):
                    if other["ratio_bp"] <= newest["ratio_bp"]:
                        try:
                            await self._follow(other, rows)
                        except Refusal as refused:  # the pool keeps that row as it was; the change below decides
                            log.warning("channel share %s/%s/%s:%s not followed: %s", store_id, other["channel"],
                                        other["scope"], other["key"], refused.detail)
                escrow = await self._follow(newest, rows)
                for other in sorted(touching, key=lambda r: r["ratio_bp"]):
                    if other["ratio_bp"] > newest["ratio_bp"]:
                        try:
                            await self._follow(other, rows)
                        except Refusal as refused:
                            log.warning("channel share %s/%s/%s:%s not followed: %s", store_id, other["channel"],
                                        other["scope"], other["key"], refused.detail)
                return escrow
            finally:
                await conn.execute("select pg_advisory_unlock(hashtext('channel_shares_follow:' || $1))", store_id)

    async def _follow(self, row, rows: list[dict]) -> dict[str, int]:
        """The StockPool's share of each SKU the row covers (a category's: those without a row of their own for this
        channel); returns each SKU's share of the escrow now."""
        store, channel = row["store_id"], row["channel"]
        own = {r["key"] for r in rows if r["channel"] == channel and r["scope"] == "sku"}
        skus = [s for s in self._skus(row["scope"], row["key"]) if row["scope"] == "sku" or s not in own]
        escrow = {}
        for sku in skus:
            r = await self.cloud.actors.stock_pool.send(SetChannelRatio(
                id=_command_id(row, sku), store=store, sku=sku, channel=channel,
                ratio_bp=self._effective(rows, sku).get(channel, 0)))
            if not r.succeeded:  # the check above keeps the sum within 10000: only another writer could get here
                raise Refusal("invalid", f"{sku}: {r.settled.reason}")
            escrow[sku] = r.settled.values.get("escrow", 0)
        return escrow

    async def resend(self) -> None:
        """Every share to the StockPool again (applied once: the same ids). A row that cannot be followed (a SKU
        that moved to a category whose shares now pass 100%) is logged and skipped: one row never stops the start."""
        by_store: dict[str, list[dict]] = {}
        for r in await self.cloud.db.fetch("select * from channel_shares order by store_id, channel, scope, key"):
            by_store.setdefault(r["store_id"], []).append(dict(r))
        for store, rows in by_store.items():
            if store in self.cloud.world.stores:
                for row in sorted(rows, key=lambda r: r["ratio_bp"]):  # decreases first: room for the increases
                    try:
                        await self._follow(row, rows)
                    except Exception as exc:  # noqa: BLE001 - the others are followed all the same
                        log.warning("channel share %s/%s/%s:%s not followed: %s", store, row["channel"],
                                    row["scope"], row["key"], getattr(exc, "detail", exc))

    async def view(self, store_id: str) -> dict[str, Any]:
        if store_id not in self.cloud.world.stores:
            raise Refusal("not_found", f"no store {store_id}")
        rows = await self.cloud.db.fetch(
            "select * from channel_shares where store_id = $1 order by channel, scope desc, key", store_id)
        return {"store_id": store_id, "shares": [_row_json(r) for r in rows]}
