"""Cashiers' PINs, as the box is provisioned with them: `{"cashiers": {"<cashier id>": "<argon2id hash>"}}` in the
box config (made with `hash_pin`, never the PIN itself). Verifying costs one argon2 computation off the event loop,
the same for an unknown cashier (checked against a decoy hash) as for a wrong PIN, so a guess learns nothing from
the answer or its time."""
from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PIN_CHARS_MAX = 32


def hash_pin(pin: str) -> str:
    """The hash to provision a cashier's PIN with (the box config keeps only this)."""
    return PasswordHasher().hash(pin)


class CashierPins:
    def __init__(self, hashes: dict[str, str]) -> None:
        self.hashes = dict(hashes)
        self.hasher = PasswordHasher()
        self._decoy: str | None = None

    async def verify(self, cashier_id: str, pin: str) -> bool:
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
