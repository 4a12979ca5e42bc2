"""A chain's production NATS configuration: the hub servers' config and one leaf-node config per store box.

What it guarantees:
- The same identities and rights as the embedded server (cloud/embedded/nats.py's `authorization_users`): the cloud's
  user, and one user per store whose permissions are `protocol.subjects.store_permissions` - its own subjects, its
  own consumer, its own inbox. Stores share the cloud's account because the JetStream streams are the cloud's (see
  cloud/embedded/nats.py); a user's rights, not an account boundary, keep stores apart. The config holds bcrypt
  hashes only; the clear passwords stay in the stores' credential book and in each store's own leaf config.
- TLS when certificate paths are given: on the client port, the leaf-node port and the cluster routes (one
  certificate for the hub; the leaves verify it against `ca_file`).
- JetStream bounded: `max_memory_store` and `max_file_store`, and the file store must hold both streams at their
  configured `max_bytes` (cloud/messaging/streams.py) with room to spare, or generation is refused.
- A leaf node per store box: it listens on loopback for the box (which connects as its store user, as to the hub)
  and connects to the hub's leaf-node port as that store's user. nats-server applies that user's permissions to the
  leaf connection (what it may publish is exported to the hub, what it may subscribe to is imported), so a store's
  leaf carries exactly what the store itself may say. The leaf runs no JetStream of its own: JetStream requests go
  through to the hub's (`default_js_domain`: the hub's unnamed domain). When the WAN drops, the till's local NATS
  stays up; the box keeps its events in its outbox (edge/sync.py) until the hub is back.

Rendering is pure (text from settings and users); cloud/deploy/cli.py writes the files.
"""
from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass

from protocol import subjects

SIZE = re.compile(r"^(\d+)\s*([KMGT]?B?)?$", re.IGNORECASE)
UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024 ** 2, "MB": 1024 ** 2, "G": 1024 ** 3, "GB": 1024 ** 3,
         "T": 1024 ** 4, "TB": 1024 ** 4}
FILE_STORE_HEADROOM = 1.25  # streams at their max_bytes plus a quarter: consumers' state, raft logs, compaction


def parse_size(text: str) -> int:
    """`64GB`, `512M`, `1073741824` -> bytes (powers of 1024, as nats-server reads them)."""
    match = SIZE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r}: give a size such as 512MB, 64GB or a number of bytes")
    return int(match.group(1)) * UNITS[(match.group(2) or "").upper()]


@dataclass(frozen=True)
class Tls:
    cert_file: str
    key_file: str
    ca_file: str = ""  # the CA that signed the hub's certificate (the leaves and clients verify with it)

    def block(self, verify_clients: bool = False) -> dict[str, object]:
        block: dict[str, object] = {"cert_file": self.cert_file, "key_file": self.key_file, "timeout": 5}
        if self.ca_file:
            block["ca_file"] = self.ca_file
        if verify_clients:
            block["verify"] = True
        return block


@dataclass(frozen=True)
class HubSettings:
    server_name: str = "freshmesh-hub-1"
    host: str = "0.0.0.0"  # noqa: S104 - a hub serves the stores over the network; TLS and passwords guard it
    client_port: int = 4222
    leaf_port: int = 7422
    monitor_host: str = "127.0.0.1"  # the monitoring endpoint tells a lot: loopback unless scraped from elsewhere
    monitor_port: int = 8222
    store_dir: str = "/var/lib/nats/jetstream"
    max_memory_store: int = 1024 ** 3
    max_file_store: int = 64 * 1024 ** 3
    max_payload: str = "1MB"
    tls: Tls | None = None
    cluster_name: str = ""  # with routes: a hub cluster (JetStream replicated across its servers)
    cluster_port: int = 6222
    routes: tuple[str, ...] = ()  # host:port of every hub server's cluster port (this one's too is fine)

    def check(self, streams_max_bytes: int) -> None:
        if self.max_file_store < streams_max_bytes * FILE_STORE_HEADROOM:
            raise ValueError(f"max_file_store {self.max_file_store} bytes cannot hold the streams' max_bytes "
                             f"({streams_max_bytes}) with headroom ({FILE_STORE_HEADROOM}x): raise it or lower "
                             f"FRESHMESH_EVENTS_MAX_BYTES / FRESHMESH_CLOUD_MESSAGES_MAX_BYTES")
        if self.max_memory_store <= 0:
            raise ValueError("max_memory_store must be positive")
        if self.routes and not self.cluster_name:
            raise ValueError("routes given without a cluster name")


@dataclass(frozen=True)
class LeafSettings:
    hub_urls: tuple[str, ...]  # host:port of the hub servers' leaf-node ports
    listen_port: int = 4222  # on loopback: the box's NATS_URL is nats://127.0.0.1:<this>
    ca_file: str = ""  # verify the hub's certificate with this CA (TLS to the hub when set)


def _value(value: object) -> str:
    # nats-server's config format accepts JSON values, so json.dumps quotes every name and path safely
    return json.dumps(value)


def render_hub(settings: HubSettings, users: list[dict[str, object]]) -> str:
    lines = [
        "# FreshMesh hub NATS server (generated by `freshmesh deploy nats-config`; edit the command, not this file)",
        f"server_name: {_value(settings.server_name)}",
        f"listen: {_value(f'{settings.host}:{settings.client_port}')}",
        f"http: {_value(f'{settings.monitor_host}:{settings.monitor_port}')}",
        f"max_payload: {settings.max_payload}",
        f"jetstream {{ store_dir: {_value(settings.store_dir)}, max_memory_store: {settings.max_memory_store}, "
        f"max_file_store: {settings.max_file_store} }}",
    ]
    if settings.tls:
        lines.append(f"tls: {_value(settings.tls.block())}")
    lines.append(f"authorization {{ timeout: 5, users: {_value(users)} }}")
    # no leafnodes authorization block: leaf connections authenticate as the users above, with their permissions
    leaf: dict[str, object] = {"listen": f"{settings.host}:{settings.leaf_port}"}
    if settings.tls:
        leaf["tls"] = settings.tls.block()
    lines.append(f"leafnodes: {_value(leaf)}")
    if settings.cluster_name:
        cluster: dict[str, object] = {"name": settings.cluster_name, "listen": f"{settings.host}:{settings.cluster_port}",
                                      "routes": [f"nats-route://{route}" for route in settings.routes]}
        if settings.tls:
            cluster["tls"] = settings.tls.block(verify_clients=False)
        lines.append(f"cluster: {_value(cluster)}")
    return "\n".join(lines) + "\n"


def render_leaf(store_id: str, password: str, password_hash: str, settings: LeafSettings) -> str:
    """One store box's leaf node. It holds the store's clear password (to log in to the hub): owner-only file."""
    user = f"store_{store_id}"
    scheme = "nats-leaf"
    quoted = urllib.parse.quote(password, safe="")
    remote: dict[str, object] = {"urls": [f"{scheme}://{user}:{quoted}@{url}" for url in settings.hub_urls]}
    if settings.ca_file:
        remote["tls"] = {"ca_file": settings.ca_file, "timeout": 5}
    local_user = {"user": user, "password": password_hash, "permissions": subjects.store_permissions(store_id)}
    lines = [
        f"# FreshMesh leaf node for store {store_id} (generated by `freshmesh deploy nats-config`). It holds the "
        "store's password: keep it owner-only.",
        f"server_name: {_value(f'freshmesh-leaf-{store_id}')}",
        f"listen: {_value(f'127.0.0.1:{settings.listen_port}')}",
        "max_payload: 1MB",
        # the box logs in here as it would at the hub; the same rights, so nothing is refused only later, upstream
        f"authorization {{ timeout: 5, users: {_value([local_user])} }}",
        f"leafnodes {{ remotes: {_value([remote])} }}",
        # A leaf without JetStream of its own, in the hub's default (unnamed) domain: without this nats-server denies
        # `$JS.API.>` across the leaf connection (it cannot tell which JetStream the box means), and the box could
        # publish events but never pull its cloud messages. The store user's rights still name its one consumer.
        'default_js_domain: {"$G": ""}',
    ]
    return "\n".join(lines) + "\n"


def box_nats_url(settings: LeafSettings) -> str:
    return f"nats://127.0.0.1:{settings.listen_port}"
