"""A small in-process cache of what browse pages read from shared state (a store's stock view, the live flash
sales), kept for about a second: a page view does not need a fresher figure than that, and a few hundred customers
opening products of one store at once then cost one stock read, not hundreds. Orders are never priced or
reserved from it: placing an order reads the authorities again (`POST /orders`)."""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

FRESH_S = 1.0
ENTRIES_MAX = 5_000  # a few thousand (store, sku) pairs; the oldest go first


class Recent:
    def __init__(self, fresh_s: float | None = None, entries_max: int = ENTRIES_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fresh_s = FRESH_S if fresh_s is None else fresh_s
        self.entries_max, self.clock = entries_max, clock
        self.entries: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self.loading: dict[Any, asyncio.Future] = {}  # one read per key at a time: the others wait for it

    async def get(self, key: Any, load: Callable[[], Awaitable[Any]]) -> Any:
        """The value read within the last `fresh_s`, else `load()` (whose failure is not kept)."""
        now = self.clock()
        hit = self.entries.get(key)
        if hit is not None and now - hit[0] < self.fresh_s:
            return hit[1]
        waiting = self.loading.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.loading[key] = future
        try:
            value = await load()
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failure nobody else waited for is not logged as lost
            raise
        except BaseException:  # cancelled: the ones waiting try again themselves
            future.cancel()
            raise
        finally:
            del self.loading[key]
        future.set_result(value)
        self.entries[key] = (now, value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.entries_max:
            self.entries.popitem(last=False)
        return value
