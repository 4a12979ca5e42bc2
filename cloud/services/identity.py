"""Customer identity: sign in with a phone and a one-time code sent by SMS; sessions as revocable bearer tokens.

Guarantees:
- One number is one member: phones are normalised (`protocol/phones.py`) before anything else.
- A code is 6 digits from `secrets`, valid `CODE_TTL_MS`, stored only as a keyed hash; asking for one answers
  the same whether or not the phone is a member (no enumeration), and is rate-limited per phone
  (`CODE_INTERVAL_MS` apart, at most `CODES_PER_HOUR`).
- Guessing is bounded: after `ATTEMPTS_MAX` wrong codes the code is burnt and the phone locked for `LOCK_MS`.
- Signing in with the right code registers the member if the phone is new (registration needs the code too).
- A session token is 32 random bytes shown once; only its SHA-256 is stored, with an expiry, and it can be revoked.
- The phone is never stored or shown in clear: codes and locks are kept under the phone's keyed hash
  (`Members.pii.phone_hash`), answers and log lines show it masked.
Answers are results or a `Refusal`; the HTTP layer gives them their status codes.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from cloud.messaging import registration_cap
from cloud.services.sms import SmsUnavailable
from cloud.services.verdicts import Refusal
from protocol import phones
from protocol.clock import to_rfc3339
from protocol.errors import ProtocolError
from protocol.ids import derived_id

CODE_DIGITS = 6
CODE_TTL_MS = 5 * 60_000
CODE_INTERVAL_MS = 30_000  # one code per phone per this long
CODES_PER_HOUR = 5
ATTEMPTS_MAX = 5  # wrong codes before the phone is locked
LOCK_MS = 15 * 60_000
SESSION_TTL_MS = 30 * 24 * 3600_000
HOUR_MS = 3600_000
log = logging.getLogger("freshmesh.identity")


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Identity:
    def __init__(self, cloud, members, sms, code_secret: bytes) -> None:
        self.cloud, self.members, self.sms = cloud, members, sms
        self.code_secret = code_secret  # keys the codes' hashes: a copy of the table alone cannot test guesses

    def _code_hash(self, phone: str, code: str) -> bytes:
        return hmac.new(self.code_secret, f"{phone}:{code}".encode(), hashlib.sha256).digest()

    @staticmethod
    def _phone(text: str) -> str:
        try:
            return phones.normalise(text)
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None

    def _phone_hash(self, phone: str) -> bytes:
        return self.members.pii.phone_hash(phone)

    async def _locked_until(self, phone_hash: bytes, now: int) -> int | None:
        until = await self.cloud.db.fetchval("select locked_until_ms from sign_in_locks where phone_hash = $1",
                                             phone_hash)
        return until if until is not None and until > now else None

    async def request_code(self, phone_text: str) -> dict:
        """Send a code to the phone (whether or not it is a member: the answer does not say)."""
        if self.sms is None:
            raise Refusal("unavailable", "no SMS provider is configured: codes cannot be sent")
        phone, now = self._phone(phone_text), self.cloud.now_ms()
        phone_hash = self._phone_hash(phone)
        if await self._locked_until(phone_hash, now):
            raise Refusal("locked", "too many wrong codes for this phone; try again later")
        recent = await self.cloud.db.fetch("select created_ms from sign_in_codes where phone_hash = $1 and "
                                           "created_ms > $2 order by created_ms desc", phone_hash, now - HOUR_MS)
        if recent and now - recent[0]["created_ms"] < CODE_INTERVAL_MS:
            raise Refusal("throttled", f"a code was sent less than {CODE_INTERVAL_MS // 1000} s ago; wait for it")
        if len(recent) >= CODES_PER_HOUR:
            raise Refusal("throttled", f"at most {CODES_PER_HOUR} codes an hour for one phone")
        code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
        code_id = self.cloud.ids.new()
        await self.cloud.db.execute(
            "insert into sign_in_codes (code_id, phone_hash, code_hash, created_ms, expires_ms, attempts) "
            "values ($1, $2, $3, $4, $5, 0)", code_id, phone_hash, self._code_hash(phone, code), now,
            now + CODE_TTL_MS)
        try:
            await self.sms.send(phone, f"【FreshMesh】您的验证码是 {code}，{CODE_TTL_MS // 60_000} 分钟内有效。"
                                       f" Your code is {code}.", derived_id(code_id, "sms"))
        except SmsUnavailable as exc:
            await self.cloud.db.execute("delete from sign_in_codes where code_id = $1", code_id)
            log.warning("sign-in code for %s not sent: %s", phones.masked(phone), exc)
            raise Refusal("unavailable", "the code could not be sent right now; try again") from None
        return {"phone": phones.masked(phone), "expires_at": to_rfc3339(now + CODE_TTL_MS)}

    async def sign_in(self, phone_text: str, code: str) -> dict:
        """A session for the member with this phone (registered now if new), or a Refusal."""
        phone, now = self._phone(phone_text), self.cloud.now_ms()
        phone_hash = self._phone_hash(phone)
        if await self._locked_until(phone_hash, now):
            raise Refusal("locked", "too many wrong codes for this phone; try again later")
        refusal = None  # decided inside the transaction, raised after it commits (a raise inside would undo it)
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select code_id, code_hash, attempts from sign_in_codes where phone_hash = $1 "
                                      "and expires_ms > $2 and used_ms is null order by created_ms desc limit 1 "
                                      "for update", phone_hash, now)
            if row is None:
                refusal = Refusal("unauthorized", "no valid code for this phone: ask for a new one")
            elif not hmac.compare_digest(bytes(row["code_hash"]), self._code_hash(phone, code)):
                attempts = row["attempts"] + 1
                if attempts >= ATTEMPTS_MAX:  # burn the code and lock the phone
                    await conn.execute("update sign_in_codes set attempts = $2, used_ms = $3 where code_id = $1",
                                       row["code_id"], attempts, now)
                    await conn.execute("""insert into sign_in_locks (phone_hash, locked_until_ms) values ($1, $2)
                                          on conflict (phone_hash) do update
                                          set locked_until_ms = excluded.locked_until_ms""",
                                       phone_hash, now + LOCK_MS)
                    refusal = Refusal("locked", f"{ATTEMPTS_MAX} wrong codes: this phone is locked for "
                                                f"{LOCK_MS // 60_000} minutes")
                else:
                    await conn.execute("update sign_in_codes set attempts = $2 where code_id = $1", row["code_id"],
                                       attempts)
                    refusal = Refusal("unauthorized", f"wrong code ({ATTEMPTS_MAX - attempts} tries left)")
            else:
                await conn.execute("update sign_in_codes set used_ms = $2 where code_id = $1", row["code_id"], now)
        if refusal is not None:
            raise refusal
        member, created = await self.members.register(phone)
        if not created:  # the phone is proven now: a member a till made gets its new-member coupons (once)
            await registration_cap.phone_proven(self.cloud, member["member_id"], now)
        token = secrets.token_urlsafe(32)
        await self.cloud.db.execute("insert into sessions (token_hash, member_id, created_ms, expires_ms) "
                                    "values ($1, $2, $3, $4)", token_hash(token), member["member_id"], now,
                                    now + SESSION_TTL_MS)
        return {"token": token, "member_id": member["member_id"], "registered": created,
                "expires_at": to_rfc3339(now + SESSION_TTL_MS)}

    async def member_of(self, token: str) -> str | None:
        """The member a live session token belongs to, or None."""
        return await self.cloud.db.fetchval("select member_id from sessions where token_hash = $1 and expires_ms > $2 "
                                            "and revoked_ms is null", token_hash(token), self.cloud.now_ms())

    async def sign_out(self, token: str) -> None:
        await self.cloud.db.execute("update sessions set revoked_ms = $2 where token_hash = $1 and revoked_ms is null",
                                    token_hash(token), self.cloud.now_ms())
