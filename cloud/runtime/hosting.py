"""The pure actors on Ray: one named, detached, restartable Ray actor per shard, each a DurableHost.

Guarantees:
- Actors live independently of every cloud process: each is **detached** and named in the "freshmesh" namespace, so
  no API or bridge process owns it and stopping (or killing) any of them leaves the actors serving the others. A
  process that starts finds the running actors by name (`get_if_exists`) and makes one only where none runs.
- Ray restarts a crashed actor (`max_restarts=-1`); the new incarnation rebuilds its state from PostgreSQL before
  it answers anything. Ray does not retry calls by itself (`max_task_retries=0`): the caller retries with the same
  command ids, and idempotency makes that safe; an actor that is gone for good is looked up by name again
  (`cloud/runtime/calls.py`, the one retry path).
- Nothing here assumes one node: `RAY_ADDRESS` points at a cluster (token auth: README, "Deployment").

Who stops what: a cloud process that joined a cluster (`RAY_ADDRESS`) only disconnects; the actors stay with the
cluster. A cloud process that started a local Ray (no `RAY_ADDRESS`) is that Ray's only owner: its stop ends the
local Ray and with it every actor on it (their state is in PostgreSQL: the next start rebuilds them), and its death,
`kill -9` included, takes that Ray's processes along (`cloud/runtime/reaper.py`). Other cloud processes that
should outlive one another join one Ray given by `RAY_ADDRESS` (`ray start --head`, a KubeRay cluster).
A local Ray listens on loopback only (`ensure_ray`).
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import threading
from typing import cast

import ray
from ray.actor import ActorClass

from actors.base import Query, result_to_wire
from actors.flash_sale import FlashSaleGate
from actors.member_ledger import MemberLedger
from actors.order_router import OrderRouter
from actors.promotion_budgets import PromotionBudgets
from actors.stock_pool import ShortagesQuery, StockPool
from cloud.runtime.durable import DurableHost

NAMESPACE = "freshmesh"
KINDS = {"stock_pool": StockPool, "member_ledger": MemberLedger, "flash_sale": FlashSaleGate,
         "order_router": OrderRouter, "promotion_budgets": PromotionBudgets}


def kind_of(name: str) -> str:
    """'<prefix>stock_pool-3' -> 'stock_pool'; 'order_router' -> 'order_router'."""
    for kind in KINDS:
        if re.search(rf"(^|-){kind}(-|$)", name) or name.endswith(kind):
            return kind
    raise ValueError(f"no actor kind for {name!r}")


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class ActorHost:
    """A Ray actor around one DurableHost. Async: many callers' submits join the same group commit."""

    def __init__(self, name: str, database_url: str, expire_every_ms: int = 1_000) -> None:
        logging.basicConfig(level=logging.INFO)
        self.name = name
        self.kind = kind_of(name)
        self.host = DurableHost(name, KINDS[self.kind], database_url, expire_every_ms=expire_every_ms)
        self._started: asyncio.Task | None = None
        self.restarts = ray.get_runtime_context().was_current_actor_reconstructed

    async def _ready(self) -> DurableHost:
        if self._started is None:
            self._started = asyncio.ensure_future(self.host.start())
        await asyncio.shield(self._started)
        return self.host

    async def submit(self, wires: list[dict]) -> list[dict]:
        """Commands in their wire form, results back in theirs: plain maps cross Ray several times cheaper than
        records (measured: the typed records themselves cost half the durable throughput)."""
        host = await self._ready()
        results = await host.submit([host.factory.rebuild(w) for w in wires], wires)
        return [result_to_wire(r) for r in results]

    async def ask(self, query: Query):
        return (await self._ready()).ask(query)

    async def info(self) -> dict:
        host = await self._ready()
        return {"name": self.name, "kind": self.kind, "pid": os.getpid(), "seq": host.seq,
                "reconstructed": self.restarts, "queue": len(host._queue), **host.stats}

    async def stats(self) -> dict:
        """Cheap figures for the operator console, answered at once: never waits for a rebuild or a batch.
        Asking also starts a restarted host's rebuild (its next call would start it anyway), so a crashed actor
        is warm again before traffic needs it."""
        if self._started is None:
            self._started = asyncio.ensure_future(self.host.start())
        started = self._started
        failure = None  # a failed start is never retried: every call of this incarnation raises it, so say why
        if started.done():
            failure = "start cancelled" if started.cancelled() else started.exception()
        ready = started.done() and failure is None
        host = self.host
        out = {"name": self.name, "kind": self.kind, "pid": os.getpid(), "ready": ready, "seq": host.seq,
               "reconstructed": self.restarts, "queue": len(host._queue), **host.stats}
        if failure is not None:
            text = failure if isinstance(failure, str) else f"{type(failure).__name__}: {failure}"
            out["start_error"] = out["last_error"] = f"start failed: {text}"[:300]
        if ready and self.kind == "stock_pool":  # open shortages: each one is an order a store cannot hand over
            shortages = host.ask(ShortagesQuery())
            out["open_shortages"], out["shortages"] = len(shortages), shortages[:20]
        return out

    async def snapshot(self) -> int:
        host = await self._ready()
        await host.snapshot()
        return host.seq


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> str:
    """Connect to RAY_ADDRESS, or start a local Ray sized to this box; returns the cluster's address (for other
    processes of this cloud to join)."""
    if ray.is_initialized():
        return str(ray.get_runtime_context().gcs_address)
    # ray.init() replaces the process's SIGTERM handler with one that exits at once; keep the host's own
    # (uvicorn's graceful shutdown, our launcher's clean stop).
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        joining: dict = {}
        if address.split(":", 1)[0] in ("127.0.0.1", "localhost"):  # another cloud process's local Ray: this node's
            local_ray_on_loopback()  # raylet is on loopback, and this driver must say it is on that node too
            joining["_node_ip_address"] = "127.0.0.1"
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, **joining)
    else:
        local_ray_on_loopback()
        # Ray starts its workers at nice 15, for clusters where they only run batch tasks. Our workers are the
        # cloud's actors, on the path of every order and till event: under load at nice 15 a stock-pool read
        # waited ~180 ms behind the edge boxes and the API (the consistency load suite showed it).
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=num_cpus or os.cpu_count(), namespace=NAMESPACE, include_dashboard=False,
                 log_to_driver=False, configure_logging=False, _node_ip_address="127.0.0.1")
    if threading.current_thread() is threading.main_thread():
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)
    gcs = str(ray.get_runtime_context().gcs_address)
    if not address:  # a local Ray's GCS listens on loopback only, whichever address the driver was told
        gcs = f"127.0.0.1:{gcs.rsplit(':', 1)[1]}"
    return gcs


def stop_ray() -> None:
    """Disconnect this process from Ray; a local Ray this process started stops with it (its actors too)."""
    ray.shutdown()


def local_ray_on_loopback() -> None:
    """Make a local Ray's node address loopback, so that its GCS, raylet, workers and agents listen on 127.0.0.1.

    Why this way: Ray 2.60 turns `ray.init(_node_ip_address="127.0.0.1")` into the machine's routable address
    (`services.resolve_ip_for_localhost`) unless "cluster mode" is off, and its servers bind the node address; with
    the routable one they listened on every interface (issue 18). Cluster mode only decides that address (Ray
    reads `ray_constants.ENABLE_RAY_CLUSTER` when it resolves it, and its env twin only at import), and a local Ray
    is one node by definition; a cluster (`RAY_ADDRESS`) is not touched."""
    from ray._private import ray_constants
    ray_constants.ENABLE_RAY_CLUSTER = False


def host(name: str, database_url: str, expire_every_ms: int = 1_000):
    """The named detached actor, created on first use (every process that asks gets the same one)."""
    # @ray.remote turned the class into an ActorClass; mypy does not apply class decorators, so it is told here
    actor_class = cast("ActorClass[ActorHost]", ActorHost)
    return actor_class.options(name=name, namespace=NAMESPACE, get_if_exists=True,
                               lifetime="detached",
                               max_concurrency=10_000).remote(name, database_url, expire_every_ms)


def retire_actors(prefix: str) -> list[str]:
    """Kill, for good (no restart), every actor of this namespace whose name starts with `prefix`: a test's cloud
    or a load run ending, whose detached actors would otherwise live as long as the Ray they run on. An empty
    prefix is refused: those are a chain's own actors, stopped only with their Ray."""
    if not prefix:
        raise ValueError("retire_actors: give the prefix of the actors to retire (never a chain's own)")
    gone = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == NAMESPACE and entry["name"].startswith(prefix):
            try:
                ray.kill(ray.get_actor(entry["name"], namespace=NAMESPACE), no_restart=True)
                gone.append(entry["name"])
            except ValueError:  # gone meanwhile
                pass
    return gone
