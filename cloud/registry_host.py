"""The StoreRegistry on Ray: soft state (rebuilt from the next heartbeats after a restart), so not journaled."""
from __future__ import annotations

import time

import ray

from actors.store_registry import StoreRegistry
from cloud.ray_hosts import NAMESPACE


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class RegistryHost:
    def __init__(self) -> None:
        self.registry = StoreRegistry()

    def report(self, heartbeats: list[dict], events: list[list]) -> None:
        """heartbeats: [{store_id, now_ms, ...}]; events: [[store_id, seq, wall_ms, now_ms]] (batched by the bridge)."""
        for hb in heartbeats:
            self.registry.heartbeat(**hb)
        for store_id, seq, wall_ms, now_ms in events:
            self.registry.event(store_id, seq, wall_ms, now_ms)

    def view(self) -> list[dict]:
        return self.registry.view(time.time_ns() // 1_000_000)


def registry(prefix: str = ""):
    return RegistryHost.options(name=f"{prefix}store_registry", namespace=NAMESPACE, get_if_exists=True).remote()
