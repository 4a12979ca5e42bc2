"""Operator accounts, their sign-in sessions and the operator audit log.

Guarantees:
- An operator is an account (unique lower-case username, role, a store for a store manager); what a role may do
  is decided in one place, `protocol/roles.py`. Only an hq_admin (or the command line on the server) creates
  accounts, and a disabled account signs in no more and its sessions stop working.
- Passwords are stored only as argon2id hashes (argon2-cffi, its default parameters); a hash made with weaker
  parameters than today's is replaced at the next successful sign-in (`check_needs_rehash`). Hashing runs in a
  thread, so a sign-in does not stall the worker's event loop.
- Signing in answers the same for an unknown username and a wrong password (an unknown name costs one argon2
  verification too). After `FAILURES_MAX` wrong passwords for one username within `FAILURE_WINDOW_MS` (known or
  not: answers must not differ) that username is locked for `LOCK_MS`, even for the right password.
- A session token is 32 random bytes shown once; only its SHA-256 is stored, it expires after `SESSION_TTL_MS`,
  and signing out revokes it.
- Every operator write is recorded in `operator_audit` (who, action, target, before and after as JSON, when) in
  the same transaction as the write where the write is in PostgreSQL (accounts, world versions; `record`).
Answers are results or a `Refusal`; the HTTP layer gives them their status codes.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cloud.services.verdicts import Refusal
from protocol import roles
from protocol.clock import to_rfc3339
from protocol.errors import ProtocolError

SESSION_TTL_MS = 12 * 3600_000
FAILURES_MAX = 5  # wrong passwords per username within the window before it is locked
FAILURE_WINDOW_MS = 15 * 60_000
LOCK_MS = 15 * 60_000
AUDIT_PAGE_MAX = 200
BOOTSTRAP_USERNAME = "admin"
_BOOTSTRAP_LOCK = 0x464D4F50  # "FMOP": one process at a time decides whether the table is empty


@dataclass(frozen=True)
class Operator:
    """A signed-in operator, as the endpoints see them."""

    operator_id: str
    username: str
    role: str
    store_id: str | None
    stall_id: str | None = None  # a stall_owner's market stall (protocol/stalls.py)

    def to_json(self) -> dict[str, Any]:
        return {"operator_id": self.operator_id, "username": self.username, "role": self.role,
                "store_id": self.store_id, "stall_id": self.stall_id}


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def normal_username(text: str) -> str:
    return text.strip().lower()


async def record(conn, at_ms: int, by: Operator | None, action: str, target: str, before: Any, after: Any,
                 by_name: str | None = None) -> None:
    """One audit entry, written on `conn` (inside the caller's transaction, so the entry and the write are one)."""
    await conn.execute(
        "insert into operator_audit (at_ms, operator_id, username, action, target, before, after) "
        "values ($1, $2, $3, $4, $5, $6, $7)", at_ms, by.operator_id if by else None,
        by.username if by else (by_name or "unknown"), action, target,
        None if before is None else json.dumps(before), None if after is None else json.dumps(after))


def _entry(row) -> dict[str, Any]:
    return {"audit_id": row["audit_id"], "at": to_rfc3339(row["at_ms"]), "operator_id": row["operator_id"],
            "username": row["username"], "action": row["action"], "target": row["target"],
            "before": None if row["before"] is None else json.loads(row["before"]),
            "after": None if row["after"] is None else json.loads(row["after"])}


class Operators:
    def __init__(self, db, clock, ids, hasher: PasswordHasher | None = None) -> None:
        self.db, self.clock, self.ids = db, clock, ids
        self.hasher = hasher or PasswordHasher()
        self._decoy: str | None = None  # a hash to verify unknown usernames against: the same cost as a known one

    def _now(self) -> int:
        return int(self.clock.now_ms())

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def _verify(self, stored: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def create(self, username: str, password: str, role: str, store_id: str | None = None, *,
                     by: Operator | None = None, by_name: str | None = None,
                     known_stores: Any = None, stall_id: str | None = None) -> dict[str, Any]:
        """A new account. `by`: the hq_admin creating it (None: the command line, named by `by_name`);
        `known_stores`: the store ids a store manager may be given (None: not checked)."""
        if by is not None and (why := roles.refusal(by.role, "operators.manage")):
            raise Refusal("forbidden", why)
        username = normal_username(username)
        try:
            roles.check_account(username, role, store_id, stall_id)
            roles.check_password(password)
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        if store_id is not None and known_stores is not None and store_id not in known_stores:
            raise Refusal("invalid", f"store_id: no store {store_id}")
        hashed, now, operator_id = await self._hash(password), self._now(), self.ids.new()
        async with self.db.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "insert into operators (operator_id, username, password_hash, role, store_id, created_ms, stall_id) "
                "values ($1, $2, $3, $4, $5, $6, $7) on conflict (username) do nothing returning operator_id",
                operator_id, username, hashed, role, store_id, now, stall_id)
            if inserted is None:
                raise Refusal("exists", f"username: {username!r} is taken")
            account = {"operator_id": operator_id, "username": username, "role": role, "store_id": store_id,
                       **({"stall_id": stall_id} if stall_id else {}), "created_at": to_rfc3339(now), "disabled": False}
            await record(conn, now, by, "operator.create", f"operator:{username}", None, account, by_name)
        return account

    async def bootstrap_admin(self, password: str | None) -> tuple[bool, str | None]:
        """On an empty operators table only: create `admin` (hq_admin) with `password`, or a generated one.
        Answers (created, the generated password or None); the caller shows a generated one once."""
        generated = None if password else secrets.token_urlsafe(12)
        chosen = password or generated or ""
        try:
            roles.check_password(chosen)
        except ProtocolError as exc:
            raise Refusal("invalid", f"FRESHMESH_ADMIN_PASSWORD: {exc}") from None
        hashed, now = await self._hash(chosen), self._now()
        async with self.db.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _BOOTSTRAP_LOCK)
            if await conn.fetchval("select exists (select 1 from operators)"):
                return False, None
            account = {"operator_id": self.ids.new(), "username": BOOTSTRAP_USERNAME, "role": "hq_admin",
                       "store_id": None}
            await conn.execute("insert into operators (operator_id, username, password_hash, role, store_id, "
                               "created_ms) values ($1, $2, $3, 'hq_admin', null, $4)", account["operator_id"],
                               BOOTSTRAP_USERNAME, hashed, now)
            await record(conn, now, None, "operator.create", f"operator:{BOOTSTRAP_USERNAME}", None,
                         {**account, "created_at": to_rfc3339(now), "disabled": False}, "freshmesh cloud (first start)")
        return True, generated

    async def set_password(self, username: str, password: str, by_name: str) -> None:
        """The command line's password reset (an operator who lost theirs; the first admin's printed one)."""
        try:
            roles.check_password(password)
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        username, hashed, now = normal_username(username), await self._hash(password), self._now()
        async with self.db.acquire() as conn, conn.transaction():
            operator_id = await conn.fetchval("update operators set password_hash = $2 where username = $1 "
                                              "returning operator_id", username, hashed)
            if operator_id is None:
                raise Refusal("not_found", f"no operator {username!r}")
            await conn.execute("update operator_sessions set revoked_ms = $2 where operator_id = $1 "
                               "and revoked_ms is null", operator_id, now)  # a reset ends every old session
            await conn.execute("delete from operator_sign_in_failures where username = $1", username)
            await record(conn, now, None, "operator.password", f"operator:{username}", None, None, by_name)

    async def _locked(self, username: str, now: int) -> bool:
        until = await self.db.fetchval("select locked_until_ms from operator_sign_in_failures where username = $1",
                                       username)
        return until is not None and until > now

    async def _failed(self, username: str, now: int) -> int:
        """Count a wrong password; lock the username at the limit. Answers the tries left."""
        async with self.db.acquire() as conn, conn.transaction():
            failures = await conn.fetchval(
                """insert into operator_sign_in_failures as f (username, failures, first_ms) values ($1, 1, $2)
                   on conflict (username) do update set
                       failures = case when f.first_ms <= $2 - $3 then 1 else f.failures + 1 end,
                       first_ms = case when f.first_ms <= $2 - $3 then $2 else f.first_ms end
                   returning failures""", username, now, FAILURE_WINDOW_MS)
            if failures >= FAILURES_MAX:
                await conn.execute("update operator_sign_in_failures set locked_until_ms = $2, failures = 0, "
                                   "first_ms = $3 where username = $1", username, now + LOCK_MS, now)
                return 0
        return FAILURES_MAX - failures

    async def sign_in(self, username_text: str, password: str) -> dict[str, Any]:
        """A session for the operator, or a Refusal that does not say whether the username exists."""
        username, now = normal_username(username_text), self._now()
        if await self._locked(username, now):
            raise Refusal("locked", f"too many wrong passwords for this username: try again in "
                                    f"{LOCK_MS // 60_000} minutes", retry_after_s=LOCK_MS // 1000)
        row = await self.db.fetchrow("select operator_id, username, password_hash, role, store_id, stall_id, disabled_ms "
                                     "from operators where username = $1", username)
        if self._decoy is None:
            self._decoy = await self._hash(secrets.token_urlsafe(16))
        ok = await self._verify(row["password_hash"] if row else self._decoy, password)
        if not ok or row is None or row["disabled_ms"] is not None:
            left = await self._failed(username, now)
            if left == 0:
                raise Refusal("locked", f"{FAILURES_MAX} wrong passwords: this username is locked for "
                                        f"{LOCK_MS // 60_000} minutes", retry_after_s=LOCK_MS // 1000)
            raise Refusal("unauthorized", f"wrong username or password ({left} tries left before a "
                                          f"{LOCK_MS // 60_000}-minute lock)")
        if self.hasher.check_needs_rehash(row["password_hash"]):  # made with older, weaker parameters
            await self.db.execute("update operators set password_hash = $2 where operator_id = $1",
                                  row["operator_id"], await self._hash(password))
        token = secrets.token_urlsafe(32)
        async with self.db.acquire() as conn, conn.transaction():
            await conn.execute("delete from operator_sign_in_failures where username = $1", username)
            await conn.execute("insert into operator_sessions (token_hash, operator_id, created_ms, expires_ms) "
                               "values ($1, $2, $3, $4)", token_hash(token), row["operator_id"], now,
                               now + SESSION_TTL_MS)
        return {"token": token, "operator_id": row["operator_id"], "username": row["username"], "role": row["role"],
                "store_id": row["store_id"], "stall_id": row["stall_id"], "expires_at": to_rfc3339(now + SESSION_TTL_MS)}

    async def session(self, token: str) -> Operator | None:
        """The operator a live session token belongs to (not expired, not revoked, account enabled), or None."""
        row = await self.db.fetchrow(
            "select o.operator_id, o.username, o.role, o.store_id, o.stall_id from operator_sessions s "
            "join operators o on o.operator_id = s.operator_id where s.token_hash = $1 and s.expires_ms > $2 "
            "and s.revoked_ms is null and o.disabled_ms is null", token_hash(token), self._now())
        return None if row is None else Operator(row["operator_id"], row["username"], row["role"], row["store_id"],
                                                 row["stall_id"])

    async def sign_out(self, token: str) -> None:
        await self.db.execute("update operator_sessions set revoked_ms = $2 where token_hash = $1 "
                              "and revoked_ms is null", token_hash(token), self._now())

    async def accounts(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch("select operator_id, username, role, store_id, stall_id, created_ms, disabled_ms "
                                   "from operators order by username")
        return [{"operator_id": r["operator_id"], "username": r["username"], "role": r["role"],
                 "store_id": r["store_id"], "stall_id": r["stall_id"], "created_at": to_rfc3339(r["created_ms"]),
                 "disabled": r["disabled_ms"] is not None} for r in rows]

    async def record_now(self, by: Operator, action: str, target: str, before: Any, after: Any) -> None:
        """An audit entry for an act that has its own transaction (or none: a read of personal data)."""
        async with self.db.acquire() as conn:
            await record(conn, self._now(), by, action, target, before, after)

    async def audit_log(self, limit: int = 50, before: int | None = None) -> dict[str, Any]:
        """Newest first; `before`: an audit_id, for the next page (the answer's `next_before`)."""
        limit = max(1, min(limit, AUDIT_PAGE_MAX))
        rows = await self.db.fetch("select * from operator_audit where ($1::bigint is null or audit_id < $1) "
                                   "order by audit_id desc limit $2", before, limit)
        entries = [_entry(r) for r in rows]
        return {"entries": entries, "next_before": entries[-1]["audit_id"] if len(entries) == limit else None}
