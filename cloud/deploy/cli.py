"""`freshmesh deploy nats-config`: write a chain's NATS configuration (cloud/deploy/nats_config.py) to a directory.

Written, all owner-only (0600) where they hold a secret:
- `hub.conf`: the hub server's config (store users by bcrypt hash, TLS, JetStream limits, leaf-node port).
- `cloud.env`: `NATS_URL` for the cloud processes (the cloud user's password; kept in `cloud-password` so that a
  second run keeps it).
- `leaf/<store>.conf`: each store box's leaf node (its store's password, to log in to the hub).
- `boxes/<store>.box.json`: each box's `freshmesh edge --config` (its store id and password, NATS on its leaf).
- the stores' credential book (`--book`, default `<out>/store-credentials.json`): a store that has a password keeps
  it, so running the command again (one more store) changes nobody else's.
"""
from __future__ import annotations

import csv
import os
import secrets
import sys
import urllib.parse
from pathlib import Path

from cloud.deploy.nats_config import (
    HubSettings,
    LeafSettings,
    Tls,
    box_nats_url,
    parse_size,
    render_hub,
    render_leaf,
)
from protocol.messages import valid_store_id

# cloud.embedded.nats, cloud.messaging.streams and cloud.store_credentials are imported where used: building the
# `freshmesh` parser imports this module, and other commands should not pay for NATS or bcrypt


def read_stores(path: Path) -> list[str]:
    """Store ids from a CSV file: a `store_id` column (other columns are ignored), or the first column without a
    header. Every id is checked; a bad one is named with its line."""
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{path}: no stores")
    header = [cell.strip().lower() for cell in rows[0]]
    column, body, first_line = (header.index("store_id"), rows[1:], 2) if "store_id" in header else (0, rows, 1)
    stores = []
    for line, row in enumerate(body, start=first_line):
        store_id = row[column].strip() if column < len(row) else ""
        if not valid_store_id(store_id):
            raise ValueError(f"{path}:{line}: invalid store id {store_id!r}")
        stores.append(store_id)
    if len(set(stores)) != len(stores):
        raise ValueError(f"{path}: a store id appears twice")
    return stores


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when it replaces a file that was readable by others
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _cloud_password(out: Path) -> str:
    path = out / "cloud-password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(32)
    _write_secret(path, password + "\n")
    return password


def hub_settings(args) -> HubSettings:
    tls = Tls(args.tls_cert, args.tls_key, args.tls_ca or "") if args.tls_cert or args.tls_key else None
    if tls and not (tls.cert_file and tls.key_file):
        raise ValueError("give both --tls-cert and --tls-key")
    routes = tuple(r.strip() for r in (args.cluster_routes or "").split(",") if r.strip())
    return HubSettings(server_name=args.server_name, host=args.host, client_port=args.client_port,
                       leaf_port=args.leaf_port, monitor_port=args.monitor_port, store_dir=args.jetstream_dir,
                       max_memory_store=parse_size(args.max_memory_store), max_file_store=parse_size(args.max_file_store),
                       tls=tls, cluster_name=args.cluster_name or "", cluster_port=args.cluster_port, routes=routes)


def generate(args) -> list[str]:
    """Write every file; returns the lines to print (paths and counts, never a password)."""
    from cloud.embedded.nats import CLOUD_USER, authorization_users
    from cloud.messaging.streams import StreamBounds
    from cloud.store_credentials import BOOK_NAME, CredentialBook, nats_hash, write_box_config
    stores = read_stores(Path(args.stores)) if args.stores else [f"S{i:03d}" for i in range(1, args.count + 1)]
    if not stores or not all(valid_store_id(s) for s in stores):
        raise ValueError(f"--count {args.count}: give 1 or more stores, each a valid store id")
    settings = hub_settings(args)
    bounds = StreamBounds.from_env()
    settings.check(bounds.events_max_bytes + bounds.cloud_messages_max_bytes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    book = CredentialBook(Path(args.book) if args.book else out / BOOK_NAME)
    new = book.provision(stores)
    cloud_password = _cloud_password(out)
    users = authorization_users(nats_hash(cloud_password), book, stores)
    _write_secret(out / "hub.conf", render_hub(settings, users))
    public = args.public_host or (settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1")  # noqa: S104
    scheme = "tls" if settings.tls else "nats"
    _write_secret(out / "cloud.env", f"NATS_URL={scheme}://{CLOUD_USER}:{urllib.parse.quote(cloud_password, safe='')}"
                                     f"@{public}:{settings.client_port}\n")
    hubs = tuple(h.strip() for h in (args.hub or f"{public}:{settings.leaf_port}").split(",") if h.strip())
    leaf = LeafSettings(hub_urls=hubs, listen_port=args.leaf_listen_port,
                        ca_file=args.leaf_ca or (settings.tls.ca_file if settings.tls else ""))
    for store_id in stores:
        password = book.password(store_id) or ""
        _write_secret(out / "leaf" / f"{store_id}.conf", render_leaf(store_id, password, book.hashed(store_id), leaf))
        (out / "boxes").mkdir(mode=0o700, exist_ok=True)
        write_box_config(book.box_config(store_id, box_nats_url(leaf)), out / "boxes" / f"{store_id}.box.json")
    return [f"hub config: {out / 'hub.conf'} ({len(stores)} store users, TLS {'on' if settings.tls else 'OFF'}, "
            f"JetStream max_file_store {settings.max_file_store} bytes)",
            f"cloud NATS_URL: {out / 'cloud.env'} (owner-only)",
            f"leaf configs: {out / 'leaf'}/<store>.conf, box configs: {out / 'boxes'}/<store>.box.json (owner-only)",
            f"store credentials: {book.path} ({len(new)} new, {len(stores) - len(new)} kept)"]


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="deploy", required=True)
    nats = sub.add_parser("nats-config", help="the chain's NATS hub config, one leaf-node config and box config per "
                                              "store, the cloud's NATS_URL")
    which = nats.add_mutually_exclusive_group(required=True)
    which.add_argument("--stores", help="CSV file with a store_id column (or store ids in the first column)")
    which.add_argument("--count", type=int, help="stores S001..S<count>")
    nats.add_argument("--out", required=True, help="directory to write into")
    nats.add_argument("--book", default=None, help="the stores' credential book (default: OUT/store-credentials.json)")
    nats.add_argument("--server-name", default="freshmesh-hub-1")
    nats.add_argument("--host", default="0.0.0.0", help="address the hub listens on for clients and leaf nodes")  # noqa: S104
    nats.add_argument("--public-host", default=None,
                      help="the hub's address as the cloud and the leaves reach it (default: --host, or 127.0.0.1)")
    nats.add_argument("--client-port", type=int, default=4222)
    nats.add_argument("--leaf-port", type=int, default=7422)
    nats.add_argument("--monitor-port", type=int, default=8222, help="monitoring, on 127.0.0.1")
    nats.add_argument("--jetstream-dir", default="/var/lib/nats/jetstream")
    nats.add_argument("--max-memory-store", default="1GB")
    nats.add_argument("--max-file-store", default="64GB",
                      help="must hold both streams' max_bytes with 25%% headroom (checked)")
    nats.add_argument("--tls-cert", default=None, help="the hub's certificate (PEM); TLS on clients, leaves, routes")
    nats.add_argument("--tls-key", default=None)
    nats.add_argument("--tls-ca", default=None, help="the CA that signed it (written into the leaf configs too)")
    nats.add_argument("--cluster-name", default=None, help="with --cluster-routes: a hub cluster")
    nats.add_argument("--cluster-port", type=int, default=6222)
    nats.add_argument("--cluster-routes", default=None, help="host:port,… of every hub server's cluster port")
    nats.add_argument("--hub", default=None, help="host:port,… of the hubs' leaf-node ports, as the store boxes reach "
                                                  "them (default: PUBLIC_HOST:LEAF_PORT)")
    nats.add_argument("--leaf-listen-port", type=int, default=4222, help="the leaf node's port on the box's loopback")
    nats.add_argument("--leaf-ca", default=None, help="CA path as the store boxes see it (default: --tls-ca)")


def run(args) -> int:
    try:
        lines = generate(args)
    except (ValueError, OSError, KeyError) as exc:
        print(f"freshmesh deploy nats-config: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0
