"""The StoreRegistry on Ray: soft state (rebuilt from the next heartbeats after a restart), so not journaled.
Detached and named like the durable actors (`cloud/runtime/hosting.py`): no cloud process owns it."""
from __future__ import annotations

from typing import cast

import ray
from ray.actor import ActorClass

from actors.store_registry import StoreRegistry
from cloud.runtime.hosting import NAMESPACE


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class RegistryHost:
    def __init__(self) -> None:
        self.registry = StoreRegistry()
        self.figures = {"reports": 0, "heartbeats": 0, "commands": 0, "last_batch": 0}

    def report(self, heartbeats: list[dict], events: list[list]) -> None:
        """heartbeats: [{store_id, now_ms, ...}]; events: [[store_id, seq, wall_ms, now_ms]] (batched by the bridge)."""
        self.figures["reports"] += 1
        self.figures["heartbeats"] += len(heartbeats)
        self.figures["commands"] += len(heartbeats) + len(events)  # what it took in: the console's throughput
        self.figures["last_batch"] = len(heartbeats) + len(events)
        for hb in heartbeats:
            self.registry.heartbeat(**hb)
        for store_id, seq, wall_ms, now_ms in events:
            self.registry.event(store_id, seq, wall_ms, now_ms)

    def view(self, now_ms: int, store_id: str | None = None) -> list[dict]:
        """`now_ms` is the asker's clock: liveness is judged by the time of the question."""
        return self.registry.view(now_ms, store_id)

    def stats(self) -> dict:
        """Cheap figures for the operator console (soft state: they start again after a restart)."""
        return {"kind": "store_registry", "ready": True, "queue": 0, "stores": len(self.registry.stores),
                **self.figures}


def registry(prefix: str = ""):
    # @ray.remote turned the class into an ActorClass; mypy does not apply class decorators, so it is told here
    actor_class = cast("ActorClass[RegistryHost]", RegistryHost)
    return actor_class.options(name=f"{prefix}store_registry", namespace=NAMESPACE, get_if_exists=True,
                                lifetime="detached").remote()
