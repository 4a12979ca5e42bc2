"""What every simulated store role of the demo shares (simulators/ops_*.py): it works each store of the fleet
through that box's own HTTP API, pauses between rounds until the demo stops, and keeps the first detail of each
kind of refusal (counted as `staff_refused:<area>:<status>`) without ever stopping on one."""
from __future__ import annotations

import asyncio
import random
from collections import Counter

from loadtest.http import LeanClients

DETAIL_MAX_CHARS = 200


class StoreWork:
    """A role in every store of `fleet` (`fleet.lanes`: store id -> its box's lane API base URL). Subclasses set
    `AREA` and write `run(http, store_id)`."""

    AREA = ""

    def __init__(self, fleet, rng: random.Random, counts: Counter, stop: asyncio.Event) -> None:
        self.fleet, self.rng, self.counts, self.stop = fleet, rng, counts, stop
        self.refusals: dict[str, str] = {}  # the first detail the box gave for each kind of refusal

    def tasks(self, http: LeanClients) -> list[asyncio.Task]:
        return [asyncio.create_task(self.run(http, store_id)) for store_id in self.fleet.lanes]

    async def run(self, http: LeanClients, store_id: str) -> None:
        raise NotImplementedError

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds`, or answer True at once when the demo stops."""
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _refused(self, answer, what: str = "") -> None:
        """Count a refusal by its status; keep its detail (after `what` was refused) if it is the first of its kind."""
        key = f"staff_refused:{self.AREA}:{answer.status_code}"
        self.counts[key] += 1
        if key not in self.refusals:
            try:
                detail = str((answer.json() or {}).get("detail", ""))[:DETAIL_MAX_CHARS]
            except ValueError:
                detail = answer.text[:DETAIL_MAX_CHARS]
            self.refusals[key] = f"{what}: {detail}" if what else detail
