"""Personal data at rest (PIPL): a member's phone is kept sealed (AES-GCM), found by a keyed hash, shown masked.

Guarantees:
- `seal` encrypts with the key ring's first key under a fresh 96-bit random nonce; the sealed bytes name their key
  (`kid`), so any key of the ring opens them and rotation is possible row by row.
- The associated data binds a ciphertext to its row and field (`member_id`, `"phone"`): a sealed value copied into
  another row, or into another field, does not open (`Unsealable`), nor does one with any byte changed.
- `phone_hash` is HMAC-SHA256 under the ring's phone lookup key: equal for one normalised number, and a copy of the
  table without the key cannot test guesses against it.

Sealed format: 0x01 | len(kid) | kid (ASCII) | nonce (12) | ciphertext with its 16-byte tag.
"""
from __future__ import annotations

import logging
import os

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloud.keys import KeyRing
from protocol import phones

VERSION = 1
NONCE_BYTES = 12
SEAL_LOCK_KEY = 0x46525049  # "FRPI": one process seals or rotates at a time
log = logging.getLogger("freshmesh.pii")


class Unsealable(ValueError):
    """Sealed bytes that no key of the ring opens for this row and field (tampered, moved, or an unknown key)."""


class Pii:
    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys
        self._aead = {kid: AESGCM(key) for kid, key in keys.pii_keys.items()}

    @staticmethod
    def _aad(row: str, field: str) -> bytes:
        return f"freshmesh/{field}/{row}".encode()

    def seal(self, plaintext: str, *, row: str, field: str) -> bytes:
        kid = self.keys.sealing_kid
        nonce = os.urandom(NONCE_BYTES)
        body = self._aead[kid].encrypt(nonce, plaintext.encode(), self._aad(row, field))
        return bytes([VERSION, len(kid)]) + kid.encode() + nonce + body

    @staticmethod
    def kid_of(sealed: bytes) -> str:
        if len(sealed) < 2 or sealed[0] != VERSION or len(sealed) < 2 + sealed[1] + NONCE_BYTES:
            raise Unsealable("not sealed data of a known version")
        return sealed[2:2 + sealed[1]].decode("ascii", errors="replace")

    def open(self, sealed: bytes, *, row: str, field: str) -> str:
        sealed = bytes(sealed)
        kid = self.kid_of(sealed)
        aead = self._aead.get(kid)
        if aead is None:
            raise Unsealable(f"sealed under key {kid!r}, which this key ring does not hold")
        start = 2 + sealed[1]
        try:
            plain = aead.decrypt(sealed[start:start + NONCE_BYTES], sealed[start + NONCE_BYTES:], self._aad(row, field))
        except InvalidTag:
            raise Unsealable(f"{field} of {row}: does not open (changed, or sealed for another row or field)") from None
        return plain.decode()

    def phone_hash(self, e164: str) -> bytes:
        return phones.lookup_hash(self.keys.phone_lookup_key, e164)

    def phone_columns(self, member_id: str, e164: str) -> tuple[bytes, bytes, str]:
        """(phone_hash, phone_sealed, phone_masked) of a normalised phone, as the members table keeps it."""
        return self.phone_hash(e164), self.seal(e164, row=member_id, field="phone"), phones.masked(e164)


async def seal_clear_phones(conn: asyncpg.Connection, pii: Pii) -> int:
    """Migration 8 renamed the clear `phone` column to `phone_unsealed` (SQL cannot seal: the keys are here). Seal
    each such row, then drop the column; a no-op once done. Returns the rows sealed now."""
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", SEAL_LOCK_KEY)
        present = await conn.fetchval("select 1 from information_schema.columns where table_schema = current_schema() "
                                      "and table_name = 'members' and column_name = 'phone_unsealed'")
        if not present:
            return 0
        rows = await conn.fetch("select member_id, phone_unsealed from members where phone_unsealed is not null")
        for row in rows:
            await conn.execute("update members set phone_hash = $2, phone_sealed = $3, phone_masked = $4 "
                               "where member_id = $1", row["member_id"],
                               *pii.phone_columns(row["member_id"], phones.normalise(row["phone_unsealed"])))
        await conn.execute("alter table members drop column phone_unsealed")
    if rows:
        log.info("sealed %d members' phones kept in clear by an older version", len(rows))
    return len(rows)


async def rotate(conn: asyncpg.Connection, pii: Pii, batch: int = 500) -> dict:
    """Re-seal every member's phone under the ring's first key and recompute its lookup hash under the current
    lookup key (after a new master secret). Each batch commits on its own; a rerun finishes an interrupted one.
    Returns counts: `resealed`, `rehashed`, `members` (with a phone)."""
    counts = {"members": 0, "resealed": 0, "rehashed": 0}
    after = ""
    while True:
        async with conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", SEAL_LOCK_KEY)
            rows = await conn.fetch("select member_id, phone_hash, phone_sealed from members where phone_sealed is not "
                                    "null and member_id > $1 order by member_id limit $2 for update", after, batch)
            for row in rows:
                member_id, sealed = row["member_id"], bytes(row["phone_sealed"])
                phone = pii.open(sealed, row=member_id, field="phone")
                new_hash = pii.phone_hash(phone)
                resealed = pii.kid_of(sealed) != pii.keys.sealing_kid
                rehashed = bytes(row["phone_hash"] or b"") != new_hash
                if resealed or rehashed:
                    await conn.execute("update members set phone_hash = $2, phone_sealed = $3 where member_id = $1",
                                       member_id, new_hash,
                                       pii.seal(phone, row=member_id, field="phone") if resealed else sealed)
                counts["members"] += 1
                counts["resealed"] += resealed
                counts["rehashed"] += rehashed
        if len(rows) < batch:
            return counts
        after = rows[-1]["member_id"]


async def rotate_database(database_url: str, keys: KeyRing) -> dict:
    """`freshmesh pii rotate`: bring the schema up to date, seal what an older version left in clear, then `rotate`."""
    from cloud.migrations import migrate

    pii = Pii(keys)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        sealed_now = await seal_clear_phones(conn, pii)
        return {**await rotate(conn, pii), "sealed_from_clear": sealed_now, "sealing_kid": keys.sealing_kid}
    finally:
        await conn.close()
