"""Running a simulated third-party service (the SMS provider, the wallet provider) as its own small HTTP server:
in a running event loop (`serving`), or on its own thread and event loop (`ServiceThread`). The port is bound
before uvicorn starts, so the URL is known (and the port ours) at once; uvicorn's own signal handling is off, so
whoever runs the service decides when it stops."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import uvicorn
from starlette.applications import Starlette

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# clients keep idle connections ~5 s (httpx); a server closing its idle side at the same 5 s (uvicorn's default)
# makes a request sent on a just-closed connection fail with "Server disconnected" for nothing
KEEP_ALIVE_S = 75


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: whoever runs the provider decides when it stops (uvicorn's would
    re-raise SIGTERM after shutting down, so the process would not exit 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Starlette, port: int, label: str) -> AsyncIterator[str]:
    """`async with serving(app, port, "SMS (simulated)") as url:` serves `app` on 127.0.0.1 (a free port for 0)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(256)
        url = f"http://{HOST}:{sock.getsockname()[1]}"
        server = _Server(uvicorn.Config(app, host=HOST, port=sock.getsockname()[1],
                                        log_level="warning", access_log=False, lifespan="on",
                                        timeout_keep_alive=KEEP_ALIVE_S))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError(f"{label}: the server stopped while starting")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{label}: not started within {STARTUP_TIMEOUT_S} s")
                await asyncio.sleep(0.01)
            yield url
        finally:
            server.should_exit = True
            await task
    finally:
        sock.close()


class ServiceThread:
    """A simulated service on its own thread and event loop: `.start()` returns once it answers on `.url`;
    `.stop()` (or leaving a `with` block) stops it. `.app` is the running application (tests read its state)."""

    def __init__(self, make_app: Callable[[], Starlette], port: int, label: str) -> None:
        self.make_app, self.port, self.label = make_app, port, label
        self.url: str = ""
        self.app: Starlette | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name=label, daemon=True)

    def start(self):
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S + 5):
            self.stop()
            raise RuntimeError(f"{self.label}: did not start")
        if self._error is not None:
            self._thread.join(STOP_TIMEOUT_S)
            raise RuntimeError(f"{self.label}: could not start: {self._error}") from self._error
        return self

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            self.app = self.make_app()
            async with serving(self.app, self.port, self.label) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # handed to the starting thread
            self._error = exc
            raise
        finally:
            self._ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_TIMEOUT_S)

    def __enter__(self):
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def run_in_foreground(app: Starlette, port: int, label: str, notes: tuple[str, ...] = ()) -> int:
    """A simulated service in the foreground (`freshmesh sim …`) until SIGINT or SIGTERM: prints `LABEL: url` (and
    any `notes`) once it answers, and `LABEL: stopped` at the end; exit status 0 after a clean stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return asyncio.run(_foreground(app, port, label, notes))


async def _foreground(app: Starlette, port: int, label: str, notes: tuple[str, ...]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig_ in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig_, stop.set)
    async with serving(app, port, label) as url:
        print(f"{label}: {url}", flush=True)
        for note in notes:
            print(note, flush=True)
        await stop.wait()
    print(f"{label}: stopped", flush=True)
    return 0
