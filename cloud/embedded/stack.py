"""The embedded stack: nats-server (JetStream, per-store users) + PostgreSQL, started and stopped as one."""
from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

from cloud.embedded.nats import NatsServer, store_user
from cloud.embedded.postgres import PostgresServer
from cloud.store_credentials import BOOK_NAME, CredentialBook

DEFAULT_STORES = ("S001", "S002", "S003", "S004", "S005")


class EmbeddedStack:
    """Start with `with EmbeddedStack() as stack:`; `nats_url` (cloud user) and `database_url` are then live.

    `workdir=None` uses a temporary directory removed at stop; a given workdir is kept (data survives).
    Either server can be skipped (`nats=False`, `postgres=False`) when the environment provides one.
    """

    def __init__(self, workdir: Path | None = None, store_ids=DEFAULT_STORES, nats: bool = True,
                 postgres: bool = True) -> None:
        self._temporary = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="freshmesh-stack-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        # each store's own random password, provisioned here for the stack's stores (cloud/store_credentials.py)
        self.credentials = CredentialBook(self.workdir / BOOK_NAME)
        self.credentials.provision(store_ids)
        self.nats = NatsServer(self.workdir / "nats", secrets.token_hex(12), self.credentials,
                               list(store_ids)) if nats else None
        self.postgres = PostgresServer(self.workdir / "postgres") if postgres else None

    def _nats(self) -> NatsServer:
        if self.nats is None:
            raise RuntimeError("this stack runs no nats-server (nats=False)")
        return self.nats

    def _postgres(self) -> PostgresServer:
        if self.postgres is None:
            raise RuntimeError("this stack runs no PostgreSQL (postgres=False)")
        return self.postgres

    @property
    def nats_url(self) -> str:
        return self._nats().url

    @property
    def nats_address(self) -> str:
        return self._nats().address

    @property
    def database_url(self) -> str:
        return self._postgres().url

    def store_credentials(self, store_id: str) -> tuple[str, str]:
        """A provisioned store's NATS user and password (KeyError for a store never provisioned)."""
        password = self.credentials.password(store_id)
        if password is None:
            raise KeyError(f"store {store_id} has no credentials in {self.credentials.path}")
        return store_user(store_id), password

    def add_stores(self, store_ids) -> None:
        self._nats().add_stores(list(store_ids))

    def start(self) -> EmbeddedStack:
        try:
            if self.nats:
                self.nats.start()
            if self.postgres:
                self.postgres.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in (self.nats, self.postgres):
            if server is not None:
                server.stop()
        if self._temporary:
            if self.postgres is not None:
                self.postgres.discard()  # its data may live outside the workdir (see postgres.py)
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
