"""The cloud's key ring: every secret key a cloud process uses, from configuration.

- `FRESHMESH_SECRET_KEY`, the master secret (at least 32 characters). Sub-keys are derived from it with HKDF-SHA256,
  one per purpose (its own `info` label), so that one purpose's key tells nothing about another's: the sign-in
  codes' hash key, the phone lookup (keyed hash) key, the flash-sale pass signing key, the wallet merchant's
  request-signing key (Ed25519) and a default encryption key.
  Every process given the same master derives the same keys (every uvicorn worker agrees without talking).
- `FRESHMESH_PII_KEYS`, optional: `kid:base64key,kid2:base64key` (16, 24 or 32 bytes each, AES-GCM). The first one
  seals; all of them open. Unset: one key derived from the master seals. The derived key (its kid depends on the
  master) always stays able to open, so moving from it to configured keys needs only `freshmesh pii rotate`.
- `FRESHMESH_SECRET_KEY_PREVIOUS`, optional, only while rotating the master: its derived encryption key still
  opens what it sealed, so `freshmesh pii rotate` can re-seal and re-hash every phone under the new master.
- `FRESHMESH_STORE_CREDENTIALS`, the path of the stores' credential book (cloud/store_credentials.py: each store's
  own random NATS password): with it the cloud computes each store's member lookup key
  (`protocol.policy.member_lookup_key`); without it, store caches get no phone hash and tills find members by
  member code only.

Nothing here prints or logs a key; `repr()` shows key ids only.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cloud.store_credentials import CredentialBook
from protocol.policy import member_lookup_key

MASTER_MIN_CHARS = 32
KEY_BYTES = 32
AES_KEY_SIZES = (16, 24, 32)
KID_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_SALT = b"freshmesh key ring v1"  # fixed: HKDF's extract step wants one; the master is already uniformly random


class KeyConfigError(ValueError):
    """A key setting that cannot be used (what is wrong is in the message; the key itself never is)."""


def derive(master: bytes, purpose: str, length: int = KEY_BYTES) -> bytes:
    """A sub-key of `master` for one purpose (HKDF-SHA256; a different purpose gives an unrelated key)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=f"freshmesh:{purpose}".encode()).derive(master)


def parse_pii_keys(text: str) -> list[tuple[str, bytes]]:
    """`kid:base64key,...` -> [(kid, key)] in order; KeyConfigError on anything malformed."""
    keys: list[tuple[str, bytes]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kid, sep, encoded = part.partition(":")
        if not sep or not KID_RE.match(kid):
            raise KeyConfigError(f"FRESHMESH_PII_KEYS: each entry is kid:base64key with a kid of 1-16 of [A-Za-z0-9_-] "
                            f"(entry {len(keys) + 1} is not)")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise KeyConfigError(f"FRESHMESH_PII_KEYS: the key of {kid!r} is not base64") from None
        if len(key) not in AES_KEY_SIZES:
            raise KeyConfigError(f"FRESHMESH_PII_KEYS: the key of {kid!r} has {len(key)} bytes; AES needs 16, 24 or 32")
        if any(k == kid for k, _ in keys):
            raise KeyConfigError(f"FRESHMESH_PII_KEYS: kid {kid!r} appears twice")
        keys.append((kid, key))
    return keys


def _derived_pii_key(master: bytes) -> tuple[str, bytes]:
    # The kid names which master made the key (a one-way fingerprint), so a previous master's key can sit beside it.
    fingerprint = hashlib.sha256(derive(master, "pii key id")).hexdigest()[:8]
    return f"m{fingerprint}", derive(master, "pii encryption")


class KeyRing:
    """The keys of one cloud deployment. Guarantees: the same inputs give the same keys in every process; the
    encryption key list is never empty and its first key seals."""

    def __init__(self, master: str, pii_keys: list[tuple[str, bytes]] | None = None,
                 store_passwords: Callable[[str], str | None] | None = None, previous_master: str = "") -> None:
        """`store_passwords`: a store id -> its NATS password (None if unknown), e.g. a credential book's
        `password`."""
        if len(master) < MASTER_MIN_CHARS:
            raise KeyConfigError(f"FRESHMESH_SECRET_KEY: at least {MASTER_MIN_CHARS} characters")
        raw = master.encode()
        self.sign_in_code_key = derive(raw, "sign-in codes")
        self.phone_lookup_key = derive(raw, "phone lookup")
        self._pass_signing_key = derive(raw, "flash-sale passes")
        # the merchant's Ed25519 request-signing key with the wallet provider (base64 of its 32 raw bytes); its
        # public half is registered with the provider (`freshmesh sim pay --merchant-public-key`)
        self.pay_merchant_key = base64.b64encode(derive(raw, "wallet merchant signing")).decode()
        # the APIv3 key the wallet provider encrypts notifications under (shared with the provider)
        self.pay_api_key = base64.b64encode(derive(raw, "wallet api v3")).decode()
        ring = list(pii_keys or [])
        for secret in (master, previous_master):
            if secret:
                kid, key = _derived_pii_key(secret.encode())
                if all(k != kid for k, _ in ring):
                    ring.append((kid, key))
        self.pii_keys: dict[str, bytes] = dict(ring)  # insertion order: the first seals
        self.sealing_kid = ring[0][0]
        self.store_passwords = store_passwords
        self._store_keys: dict[str, bytes] = {}

    @property
    def pass_signing_key(self) -> bytes:
        """The key that signs short-lived flash-sale passes (HMAC), the same in every API worker."""
        return self._pass_signing_key

    def store_lookup_key(self, store_id: str) -> bytes | None:
        """The key of `store_id`'s member lookup hashes, as that store computes it from its NATS password; None
        when the store's password is not known here."""
        key = self._store_keys.get(store_id)
        if key is None and self.store_passwords is not None:
            password = self.store_passwords(store_id)
            if password:
                key = self._store_keys[store_id] = member_lookup_key(password, store_id)
        return key

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KeyRing:
        env = os.environ if env is None else env
        master = env.get("FRESHMESH_SECRET_KEY", "")
        if not master:
            raise KeyConfigError("FRESHMESH_SECRET_KEY is not set: the cloud needs its master secret (phones are sealed "
                            "with keys derived from it; `freshmesh cloud` makes one for its embedded database)")
        book = env.get("FRESHMESH_STORE_CREDENTIALS", "")
        passwords = None
        if book:
            passwords = CredentialBook(Path(book)).password
        return cls(master, parse_pii_keys(env.get("FRESHMESH_PII_KEYS", "")), passwords,
                   env.get("FRESHMESH_SECRET_KEY_PREVIOUS", ""))

    def __repr__(self) -> str:
        return f"KeyRing(sealing={self.sealing_kid!r}, opening={list(self.pii_keys)!r})"
