"""Members: one id across channels (registered by phone, with a member code for the till), and their stored
value, points and level from the MemberLedger shard."""
from __future__ import annotations

import hashlib
import secrets

import asyncpg

from actors.member_ledger import TopUp
from cloud.messaging import to_stores
from cloud.services.verdicts import Refusal
from protocol import phones
from protocol.clock import to_rfc3339
from protocol.errors import ProtocolError
from protocol.messages import MemberUpdated


class Members:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def register(self, phone_text: str) -> tuple[dict, bool]:
        """(the member, True) when registered now; (the existing member, False) when the phone was registered.
        Any usual spelling of a number is the same member (`protocol/phones.py`)."""
        try:
            phone = phones.normalise(phone_text)
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        row = await self.cloud.db.fetchrow("select * from members where phone = $1", phone)
        if row is not None:
            return await self.view(row["member_id"]), False
        member_id = self.cloud.ids.new()
        for _ in range(5):
            try:
                await self.cloud.db.execute("insert into members (member_id, phone, member_code, created_ms) "
                                            "values ($1, $2, $3, $4)", member_id, phone,
                                            f"{secrets.randbelow(10**10):010d}", self.cloud.now_ms())
                break
            except asyncpg.UniqueViolationError as exc:
                if "phone" in str(exc):  # registered concurrently: that registration wins
                    row = await self.cloud.db.fetchrow("select * from members where phone = $1", phone)
                    return await self.view(row["member_id"]), False
        body = await self.view(member_id)
        await self.notify_stores(body)
        return body, True

    async def notify_stores(self, view: dict) -> None:
        """Every store keeps a member cache for offline identification and floor-limited spending."""
        if self.cloud.nats is None:
            return
        for store_id in self.cloud.world.stores:
            await to_stores.send(self.cloud, store_id, lambda **env: MemberUpdated(
                member_id=view["member_id"], phone=view["phone"], member_code=view["member_code"], level=view["level"],
                stored_value_fen=view["stored_value_fen"], points=view["points"], **env))

    async def row(self, member_id: str):
        row = await self.cloud.db.fetchrow("select * from members where member_id = $1", member_id)
        if row is None:
            raise Refusal("not_found", f"no member {member_id}")
        return row

    async def view(self, member_id: str) -> dict:
        row = await self.row(member_id)
        ledger = await self.cloud.actors.member_ledger.member(member_id, self.cloud.now_ms())
        return {"member_id": member_id, "phone": row["phone"], "member_code": row["member_code"],
                "created_at": to_rfc3339(row["created_ms"]), "stored_value_fen": ledger["stored_value_fen"],
                "points": ledger["points"], "level": ledger["level"]}

    async def top_up(self, member_id: str, amount_fen: int, method: str, key: str) -> dict:
        await self.row(member_id)
        # a member's keys are their own; hashed, because a command id is bounded and a key is the client's choice
        transfer = f"topup:{member_id}:{hashlib.blake2b(key.encode(), digest_size=10).hexdigest()}"
        result = await self.cloud.actors.member_ledger.send(TopUp(id=transfer, member=member_id,
                                                                   amount_fen=amount_fen))
        if result.status == "conflict":
            raise Refusal("key_reused", "Idempotency-Key was already used for a different top-up")
        first = result.settled
        if result.status == "ok":
            await self.notify_stores(await self.view(member_id))
        return {"member_id": member_id, "transfer_id": transfer, "amount_fen": amount_fen, "method": method,
                "simulated": method == "wallet_sim", "stored_value_fen": first["stored_value_fen"]}
