"""Members: one id across channels (registered by phone, with a member code for the till), and their stored
value, points and level from the MemberLedger shard.

Personal data (PIPL): the phone is kept sealed, found by its keyed hash and shown masked (`cloud/services/pii.py`);
no answer, log line or store message carries it in clear, except `export` (the member's own data, for the member).
Stores get, per store, a hash only that store can compute (`protocol.policy.member_lookup_key`) and the masked
phone. `erase` leaves a tombstone: the id stays (the ledger's entries point at it), everything that identifies the
person goes, sessions end, and stores drop the member from their caches.
"""
from __future__ import annotations

import functools
import json
import logging
import secrets

import asyncpg

from cloud.messaging import to_stores
from cloud.services.coupons import issue_on_registration
from cloud.services.member_names import opened_name
from cloud.services.order_rows import order_json
from cloud.services.payments import Payments
from cloud.services.pii import Pii
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle
from protocol import phones
from protocol.clock import to_rfc3339
from protocol.errors import ProtocolError
from protocol.messages import MemberUpdated

log = logging.getLogger("freshmesh.members")


class Members:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.pii = Pii(cloud.keys)
        self.payments: Payments | None = None  # the money journal, set by the services

    async def register(self, phone_text: str, coupons: bool = True) -> tuple[dict, bool]:
        """(the member, True) when registered now; (the existing member, False) when the phone was registered.
        Any usual spelling of a number is the same member (`protocol/phones.py`). An erased member's phone is no
        longer known: registering it again makes a new member. `coupons=False`: the new-member coupons wait (a till
        registration: issued when the phone is proven, `cloud/messaging/registration_cap.py`)."""
        try:
            phone = phones.normalise(phone_text)
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        phone_hash = self.pii.phone_hash(phone)
        row = await self.cloud.db.fetchrow("select member_id from members where phone_hash = $1", phone_hash)
        if row is not None:
            return await self.view(row["member_id"]), False
        member_id = self.cloud.ids.new()
        _, sealed, masked = self.pii.phone_columns(member_id, phone)
        for _ in range(5):
            try:
                # member_code: a random till identifier (pseudonymous, not personal data by itself): kept in clear
                await self.cloud.db.execute(
                    "insert into members (member_id, phone_hash, phone_sealed, phone_masked, member_code, created_ms) "
                    "values ($1, $2, $3, $4, $5, $6)", member_id, phone_hash, sealed, masked,
                    f"{secrets.randbelow(10**10):010d}", self.cloud.now_ms())
                break
            except asyncpg.UniqueViolationError as exc:
                if "phone" in str(exc):  # registered concurrently: that registration wins
                    row = await self.cloud.db.fetchrow("select member_id from members where phone_hash = $1", phone_hash)
                    return await self.view(row["member_id"]), False
        body = await self.view(member_id)
        await self.notify_stores(body, phone)
        if coupons:
            await issue_on_registration(self.cloud, member_id)  # new-member coupons (cloud/services/coupons.py)
        return body, True

    async def notify_stores(self, view: dict, phone: str | None = None,
                            settles: dict[str, tuple[str, ...]] | None = None, stores=None) -> None:
        """Every store keeps a member cache for offline identification and floor-limited spending: per store, the
        phone's hash under that store's own lookup key and the masked phone, never the number. `phone`: the clear
        number when the caller has it (else it is opened from the row). `settles`: per store, the references of its
        stored-value spends this balance includes (the store stops counting them as unsettled). `stores`: only
        these (default: every store)."""
        if self.cloud.nats is None:
            return
        if phone is None:
            row = await self.row(view["member_id"])
            phone = self.pii.open(row["phone_sealed"], row=row["member_id"], field="phone")
        items = []
        for store_id in (self.cloud.world.stores if stores is None else stores):
            key = self.cloud.keys.store_lookup_key(store_id)
            phone_hash = phones.lookup_hash(key, phone) if key is not None else b""  # without it: member code only
            items.append((store_id, functools.partial(
                MemberUpdated, member_id=view["member_id"], phone_hash=phone_hash, phone_masked=view["phone"],
                member_code=view["member_code"], level=view["level"], stored_value_fen=view["stored_value_fen"],
                points=view["points"], settles=(settles or {}).get(store_id, ()))))
        await to_stores.send_many(self.cloud, items)  # one numbering statement and the publishes together

    async def row(self, member_id: str, erased: bool = False):
        """The member's row; not_found for an unknown member, and for an erased one unless `erased`."""
        row = await self.cloud.db.fetchrow("select * from members where member_id = $1", member_id)
        if row is None or (row["erased_ms"] is not None and not erased):
            raise Refusal("not_found", f"no member {member_id}" + (" (erased)" if row is not None else ""))
        return row

    async def view(self, member_id: str) -> dict:
        row = await self.row(member_id)
        ledger = await self.cloud.actors.member_ledger.member(member_id, self.cloud.now_ms())
        return {"member_id": member_id, "phone": row["phone_masked"], "member_code": row["member_code"],
                "created_at": to_rfc3339(row["created_ms"]), "stored_value_fen": ledger["stored_value_fen"],
                "points": ledger["points"], "level": ledger["level"]}

    async def top_up(self, member_id: str, amount_fen: int, method: str, key: str, digest: bytes) -> dict:
        """A top-up through the wallet provider: what the member must pay; stored value comes in only on the
        provider's verified word (`TopUps.top_up`). Cash is taken at a till only."""
        await self.row(member_id)
        assert self.payments is not None
        return await self.payments.top_ups.top_up(member_id, amount_fen, method, key, digest)

    async def top_up_view(self, member_id: str, top_up_id: str) -> dict:
        assert self.payments is not None
        body = await self.payments.top_ups.top_up_view(member_id, top_up_id)
        body["stored_value_fen"] = (await self.view(member_id))["stored_value_fen"]
        return body

    async def balance_changed(self, member_id: str) -> None:
        """Stores keep members' balances for offline spending: tell them the new one."""
        try:
            await self.notify_stores(await self.view(member_id))
        except Refusal:  # erased meanwhile: nothing to tell
            pass

    async def export(self, member_id: str) -> dict:
        """Everything held about the member (PIPL access and portability): the phone opened, the member code, the
        ledger's view, online orders, till sales, and sessions. An erased member's export shows what is left."""
        row = await self.row(member_id, erased=True)
        phone = self.pii.open(row["phone_sealed"], row=member_id, field="phone") if row["phone_sealed"] else None
        ledger = await self.cloud.actors.member_ledger.member(member_id, self.cloud.now_ms())
        orders = await self.cloud.db.fetch("select * from orders where member_id = $1 order by created_ms", member_id)
        sales = await self.cloud.db.fetch("select sale_id, store_id, lane, total_fen, lines, payments, offline, wall_ms "
                                          "from till_sales where member_id = $1 order by wall_ms", member_id)
        sessions = await self.cloud.db.fetchrow(
            "select count(*) as total, count(*) filter (where revoked_ms is null and expires_ms > $2) as live "
            "from sessions where member_id = $1", member_id, self.cloud.now_ms())
        return {"member_id": member_id, "phone": phone, "phone_masked": row["phone_masked"],
                "name": opened_name(self.pii, row), "name_masked": row["name_masked"],  # given at a till
                "member_code": row["member_code"], "created_at": to_rfc3339(row["created_ms"]),
                "erased_at": to_rfc3339(row["erased_ms"]) if row["erased_ms"] is not None else None,
                "ledger": {"stored_value_fen": ledger["stored_value_fen"], "points": ledger["points"],
                           "level": ledger["level"]},
                "orders": [{**order_json(o), "location": json.loads(o["location"]) if o["location"] else None}
                           for o in orders],
                "till_sales": [{"sale_id": s["sale_id"], "store_id": s["store_id"], "lane": s["lane"],
                                "total_fen": s["total_fen"], "lines": json.loads(s["lines"]),
                                "payments": json.loads(s["payments"]), "offline": s["offline"],
                                "at": to_rfc3339(s["wall_ms"])} for s in sales],
                "sessions": {"total": sessions["total"], "live": sessions["live"]}}

    async def erase(self, member_id: str) -> dict:
        """Erase the member (PIPL deletion), leaving a tombstone: the phone's hash, sealed copy and masked form,
        the member code and the name given at a till are cleared and `erased_ms` set, in one transaction with
        revoking every session, dropping
        pending sign-in codes and locks for the phone and the delivery locations of finished orders; then every
        store is told to drop the member from its cache.
        The ledger keeps its entries under the member id (balances still add up), orders and till sales keep the
        id; nothing left links the id to the person. Signing in with that phone later registers a new member.
        Idempotent: erasing again answers the same tombstone (and tells the stores again)."""
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from members where member_id = $1 for update", member_id)
            if row is None:
                raise Refusal("not_found", f"no member {member_id}")
            erased_ms = row["erased_ms"]
            if erased_ms is None:
                erased_ms = now
                if row["phone_hash"] is not None:
                    await conn.execute("delete from sign_in_codes where phone_hash = $1", row["phone_hash"])
                    await conn.execute("delete from sign_in_locks where phone_hash = $1", row["phone_hash"])
                await conn.execute("update members set phone_hash = null, phone_sealed = null, phone_masked = null, "
                                   "name_sealed = null, name_masked = null, member_code = null, erased_ms = $2 "
                                   "where member_id = $1", member_id, now)
                # a delivery location can point at a home: finished orders lose it (open ones still need it)
                await conn.execute("update orders set location = null where member_id = $1 and location is not null "
                                   "and status = any($2::text[])", member_id, list(lifecycle.FINAL_STATUSES))
            revoked = await conn.execute("update sessions set revoked_ms = $2 where member_id = $1 and revoked_ms is "
                                         "null", member_id, now)
        if self.cloud.nats is not None:
            forget = functools.partial(MemberUpdated, member_id=member_id, phone_hash=b"", phone_masked="",
                                       member_code="", level="", stored_value_fen=0, points=0, erased=True)
            await to_stores.send_many(self.cloud, [(store_id, forget) for store_id in self.cloud.world.stores])
        ledger = await self.cloud.actors.member_ledger.member(member_id, self.cloud.now_ms())
        log.info("member %s erased", member_id)
        return {"member_id": member_id, "erased_at": to_rfc3339(erased_ms),
                "sessions_revoked": int(revoked.split()[-1]), "stored_value_fen": ledger["stored_value_fen"],
                "points": ledger["points"]}
