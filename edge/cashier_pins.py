"""Cashiers' PINs, as the box is provisioned with them: `{"cashiers": {"<cashier id>": "<argon2id hash>"}}` in the
box config (made with `hash_pin`, never the PIN itself). Verifying costs one argon2 computation off the event loop,
the same for an unknown cashier (checked against a decoy hash) as for a wrong PIN, so a guess learns nothing from
the answer or its time. A PIN is short, so guessing is bounded: after `FAILURES_MAX` wrong PINs in a row for one
cashier id, that id is locked for `LOCK_MS` (the answer stays the same, so the lock tells a guesser nothing).

A cashier may have a role: `{"cashiers": {"<id>": {"pin_hash": "<argon2id hash>", "role": "manager"}}}`; a plain hash
string is a cashier with the role "cashier" (configs from before roles mean the same). Managers approve what a
cashier may not (a stocktake's variances); their PIN is verified the same way, then the role is checked."""
from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from protocol.messages import NAME_RE
from protocol.schema import record, require

PIN_CHARS_MAX = 32
FAILURES_MAX = 5
LOCK_MS = 5 * 60 * 1000
ROLES = ("cashier", "manager")


@record
class SignInBody:
    """A cashier signing in at a lane (the lane API's and the till page's body)."""
    cashier_id: str
    pin: str

    def __post_init__(self) -> None:
        require(bool(NAME_RE.fullmatch(self.cashier_id)), "cashier_id: 1-32 letters, digits, '_' or '-'")
        require(0 < len(self.pin) <= PIN_CHARS_MAX, f"pin: 1-{PIN_CHARS_MAX} characters")


def hash_pin(pin: str) -> str:
    """The hash to provision a cashier's PIN with (the box config keeps only this)."""
    return PasswordHasher().hash(pin)


class CashierPins:
    def __init__(self, cashiers: dict[str, str | dict]) -> None:
        """`cashiers`: id -> the PIN's hash, or {"pin_hash", "role"} (a role not in ROLES is refused at start)."""
        self.hashes: dict[str, str] = {}
        self.roles: dict[str, str] = {}
        for cashier_id, entry in cashiers.items():
            if isinstance(entry, str):
                entry = {"pin_hash": entry}
            role = entry.get("role", "cashier")
            if role not in ROLES or not isinstance(entry.get("pin_hash"), str):
                raise ValueError(f"cashier {cashier_id}: give pin_hash and a role of {', '.join(ROLES)}")
            self.hashes[cashier_id], self.roles[cashier_id] = entry["pin_hash"], role
        self.hasher = PasswordHasher()
        self._decoy: str | None = None
        self._failures: dict[str, tuple[int, int]] = {}  # cashier id -> (wrong PINs in a row, locked until ms)

    def role(self, cashier_id: str) -> str:
        """The configured cashier's role ("cashier" for one without a role; "" for an unknown id)."""
        return self.roles.get(cashier_id, "")

    async def verify(self, cashier_id: str, pin: str, now_ms: int) -> bool:
        """`now_ms`: the MONOTONIC clock (a lockout is a duration: a wall clock jump must not end it early or make
        it last a day)."""
        failures, locked_until = self._failures.get(cashier_id, (0, 0))
        right = await self._check(cashier_id, pin)  # checked even while locked: the same time either way
        if now_ms < locked_until:  # locked: tries are not counted, so they cannot make the lock last longer
            return False
        ok = right
        if ok:
            self._failures.pop(cashier_id, None)
        elif len(self._failures) < 10_000 or cashier_id in self._failures:  # bounded: ids are the guesser's choice
            failures += 1
            self._failures[cashier_id] = (0, now_ms + LOCK_MS) if failures >= FAILURES_MAX else (failures, 0)
        return ok

    async def _check(self, cashier_id: str, pin: str) -> bool:
        if not pin or len(pin) > PIN_CHARS_MAX:
            return False
        stored = self.hashes.get(cashier_id)
        if self._decoy is None:
            self._decoy = await asyncio.to_thread(self.hasher.hash, "decoy-pin")
        try:
            await asyncio.to_thread(self.hasher.verify, stored or self._decoy, pin)
        except (VerificationError, InvalidHashError):
            return False
        return stored is not None
