"""Is PostgreSQL answering? One small probe per API worker, so a frozen database costs a client ~2 s, not 10–20 s.

A stopped (SIGSTOP), partitioned or wedged PostgreSQL does not refuse connections: queries just never return, so
each request would wait for its whole deadline (and the pool's command timeout) before its 503. The watch runs
`select 1` on its own connection (never a pool slot: the pool may be exhausted by the very queries that hang)
every `every_s`; an answer slower than `timeout_s` marks the database down and wakes every request waiting on
it (`cloud.http.endpoint.guarded` races each request against `down`), which answers 503 problem+json naming
PostgreSQL with Retry-After. The first good answer marks it up again. Requests that do not touch the database
finish before they notice, so they are not failed by it.

Guarantees: one probe in flight at a time per worker; the probe connection is dropped and made again after any
failure (a timed-out connection is in an unknown state); `latency_ms` is the last answer's round trip, shown on
/health and the console.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

EVERY_S = 0.5
TIMEOUT_S = 1.5
log = logging.getLogger("freshmesh.db_watch")


class DbWatch:
    def __init__(self, database_url: str, every_s: float = EVERY_S, timeout_s: float = TIMEOUT_S) -> None:
        self.database_url, self.every_s, self.timeout_s = database_url, every_s, timeout_s
        self.down = asyncio.Event()
        self.latency_ms: float | None = None
        self.why = ""
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None

    @property
    def up(self) -> bool:
        return not self.down.is_set()

    def start(self) -> DbWatch:
        self._task = asyncio.create_task(self._run(), name="db-watch")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.terminate()  # never a polite close: the server may not be answering
            self._conn = None

    async def probe(self) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self.database_url, timeout=self.timeout_s)
                await self._conn.fetchval("select 1")
        except Exception as exc:  # noqa: BLE001 - any failure to answer in time is "down"
            self._drop()
            self.why = (f"no answer within {self.timeout_s:g} s" if isinstance(exc, TimeoutError)
                        else f"{type(exc).__name__}: {exc}")[:200]
            if not self.down.is_set():
                log.warning("PostgreSQL is not answering: %s", self.why)
            self.down.set()
            self.latency_ms = None
            return
        self.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        if self.down.is_set():
            log.warning("PostgreSQL answers again")
        self.down.clear()
        self.why = ""

    async def _run(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self.every_s)


current: DbWatch | None = None  # this worker's watch (set by the app's lifespan); None: not watched


CANCEL_WAIT_S = 0.2  # how long a given-up request's clean-up is waited for before the client is answered
GRACE_S = 0.5  # a request still running this long after the database was known down is given up
UNWATCHED_ROUTES = ("/health", "/metrics", "/console", "/openapi.json")  # they say the database is down themselves


async def within_database(call, route: str):
    """`call()` (an endpoint's coroutine), given up with a 503 naming PostgreSQL when the watch says it is down and
    the call has not finished `GRACE_S` later (it is then waiting on it). Unwatched: just `await call()`."""
    from cloud.http.problems import HTTPProblem  # here: problems imports the services, this module stays light

    watch = current
    if watch is None or route in UNWATCHED_ROUTES:
        return await call()
    task = asyncio.ensure_future(call())
    down = asyncio.ensure_future(watch.down.wait())
    try:
        await asyncio.wait({task, down}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=GRACE_S)
        if task.done():
            return task.result()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # its end is retrieved, never logged
        task.cancel()  # not awaited to the end: its clean-up (a pool release) may itself wait on the frozen server
        await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
        raise HTTPProblem(503, f"PostgreSQL is not answering ({watch.why}); retry", "/problems/database-unavailable",
                          headers={"Retry-After": "2"})
    finally:
        down.cancel()
        if not task.done():
            task.cancel()
