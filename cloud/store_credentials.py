"""Per-store NATS credentials: a random password for each store, made when the store is provisioned.

Nothing derives one store's password from another's or from a chain-wide secret: each is 24 random bytes
(`secrets.token_urlsafe`), so a box that is stolen or opened up gives its own store's user and nothing else.

- The credential book (`store-credentials.json`, owner-only: 0600 whatever a file there had before, replaced
  atomically, changed only under an exclusive lock so that two provisioners never drop each other's stores) is the
  provisioning record: each store's password, its bcrypt hash, when it was made. The cloud reads it for the stores'
  member lookup keys (`protocol.policy.member_lookup_key` takes the store's password: only that box and the cloud
  can compute it); `freshmesh stores credentials STORE` writes one store's box configuration from it.
- The nats-server configuration holds only the bcrypt hashes (nats-server checks a password against a `$2a$` hash
  itself): whoever reads it learns no password.
- Provisioning is idempotent: a store that has a password keeps it; `rotate` gives it a new one (its box then needs
  its new configuration; the old password stops working at the next configuration reload).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt

BOOK_NAME = "store-credentials.json"
PASSWORD_BYTES = 24  # 192 random bits, as URL-safe base64 (32 characters)
# bcrypt's minimum cost. Its work factor slows guessing a human's password; these are 192 random bits, which no
# number of guesses finds, so the cost buys nothing - while nats-server pays it at every store's (re)connect, and a
# fleet of thousands reconnecting after a cloud restart would queue behind it. bcrypt is used because it is the
# hash nats-server's configuration file accepts in place of a password.
BCRYPT_COST = 4


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def nats_hash(password: str) -> str:
    """A bcrypt hash nats-server accepts in place of the password (it wants the `$2a$` prefix)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST, prefix=b"2a")).decode()
    return hashed


def check(password: str, hashed: str) -> bool:
    return bcrypt.checkpw(password.encode(), hashed.encode())


class CredentialBook:
    """The stores' credentials in one owner-only file. Guarantees: a store's password never changes unless rotated;
    the file is never readable by others, and a crash mid-write leaves the previous book whole."""

    REREAD_AFTER_S = 1.0  # a store not in the book is looked for in the file again at most this often

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict] | None = None
        self._read_at = 0.0

    def _load(self, fresh: bool = False) -> dict[str, dict]:
        if self._entries is None or fresh:
            self._entries = json.loads(self.path.read_text()) if self.path.exists() else {}
            self._read_at = time.monotonic()
        return self._entries

    def _entry_of(self, store_id: str) -> dict | None:
        """The store's entry; the file is read again for a store not seen (a process started before the store was
        provisioned finds it), at most every REREAD_AFTER_S (a world with stores never provisioned asks often)."""
        entry = self._load().get(store_id)
        if entry is None and time.monotonic() - self._read_at >= self.REREAD_AFTER_S:
            entry = self._load(fresh=True).get(store_id)
        return entry

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock (`flock` on `<book>.lock`, next to it) around a read-modify-write of the book: a second
        provisioner reads the book only after the first has replaced it, so neither drops the other's stores."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when the file is closed, and by the kernel if we die
            yield
        finally:
            os.close(fd)

    def _save(self, entries: dict[str, dict]) -> None:
        """Written to a new owner-only temporary file, flushed to disk, then renamed over the book: a reader sees
        the old book or the new one, never half of one (called under `_locked`)."""
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)  # mkstemp's own mode, said here: the book holds every store's password
            with os.fdopen(fd, "w") as out:
                json.dump(entries, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._entries = entries

    def provision(self, store_ids) -> list[str]:
        """Give every store in `store_ids` that has none a new random password; returns those provisioned now."""
        with self._locked():
            entries = dict(self._load(fresh=True))
            new = [s for s in dict.fromkeys(store_ids) if s not in entries]
            for store_id in new:
                entries[store_id] = self._entry()
            if new:
                self._save(entries)
        return new

    def rotate(self, store_id: str) -> None:
        with self._locked():
            entries = dict(self._load(fresh=True))
            entries[store_id] = self._entry()
            self._save(entries)

    @staticmethod
    def _entry() -> dict:
        password = new_password()
        return {"password": password, "nats_hash": nats_hash(password), "created_ms": time.time_ns() // 1_000_000}

    def stores(self) -> list[str]:
        return sorted(self._load())

    def password(self, store_id: str) -> str | None:
        """The store's password; None for a store never provisioned."""
        entry = self._entry_of(store_id)
        return entry["password"] if entry else None

    def hashed(self, store_id: str) -> str:
        entry = self._entry_of(store_id)
        if entry is None:
            raise KeyError(f"store {store_id} has no credentials: provision it first")
        return entry["nats_hash"]

    def box_config(self, store_id: str, nats_url: str = "") -> dict:
        """What one store's box needs to connect as its own user (`freshmesh edge --config FILE`)."""
        password = self.password(store_id)
        if password is None:
            raise KeyError(f"store {store_id} has no credentials: provision it first")
        config = {"store_id": store_id, "nats_password": password}
        if nats_url:
            config["nats_url"] = nats_url
        return config


def write_box_config(config: dict, path: Path) -> None:
    """A box's configuration, owner-only (it holds the store's password) - also when it replaces a file that was
    readable by others: `os.open`'s mode applies only to a file it creates, so the mode is set on the open file
    before the password is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out, indent=1)
        out.write("\n")
