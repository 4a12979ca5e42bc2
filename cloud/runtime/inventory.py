"""Looking at the live actors without creating any, for the operator console.

- `actor_table()`: every actor the GCS knows, read through `ray._private.state.actors()`: the public state API
  (`ray.util.state.list_actors`) needs the dashboard, which a local Ray here runs without.
- `stats(row)` / `ask(row, query)`: an actor's cheap figures, or a query, by a handle looked up by name once per
  incarnation (`ray.get_actor`): asking through the typed clients would start a named actor that is not running,
  a whole worker process per flash sale ever held.
"""
from __future__ import annotations

import asyncio
import re
from typing import Any

import ray

from actors.base import Query
from cloud.runtime.hosting import NAMESPACE


def read_actor_table() -> list[dict]:
    """Every actor the GCS knows (blocking, about a millisecond: call it in a thread)."""
    from ray._private import state as gcs
    out = []
    for a in gcs.actors().values():
        cause = re.sub(r"\s+", " ", str(a.get("DeathCause") or "")).strip()
        out.append({"actor_id": a["ActorID"], "name": a["Name"], "class_name": a["ActorClassName"],
                    "state": a["State"], "node_id": a["Address"]["NodeID"], "address": a["Address"]["IPAddress"],
                    "pid": a["Pid"], "num_restarts": a["NumRestarts"], "death_cause": cause,
                    "start_ms": a["StartTime"], "end_ms": a["EndTime"]})
    return out


class ActorInventory:
    def __init__(self) -> None:
        self._handles: dict[str, tuple[str, Any]] = {}  # name -> (actor id, handle)

    async def actor_table(self) -> list[dict]:
        return await asyncio.to_thread(read_actor_table)

    async def _handle(self, actor: dict) -> Any:
        cached = self._handles.get(actor["name"])
        if cached is None or cached[0] != actor["actor_id"]:
            handle = await asyncio.to_thread(ray.get_actor, actor["name"], NAMESPACE)
            cached = self._handles[actor["name"]] = (actor["actor_id"], handle)
        return cached[1]

    async def stats(self, actor: dict, timeout_s: float) -> dict:
        """The actor's own cheap figures (`stats()`), or why there are none."""
        try:
            handle = await self._handle(actor)
            stats: dict = await asyncio.wait_for(handle.stats.remote(), timeout_s)
            return stats
        except TimeoutError:
            return {"error": f"no answer to stats() within {timeout_s} s"}
        except Exception as exc:  # noqa: BLE001 - dying, restarting, or no stats(): shown, not raised
            return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}

    async def ask(self, actor: dict, query: Query, timeout_s: float) -> Any:
        handle = await self._handle(actor)
        return await asyncio.wait_for(handle.ask.remote(query), timeout_s)
