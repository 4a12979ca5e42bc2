"""Serial devices through pyserial: a reader thread per port feeding a sans-I/O codec.

A port that disappears or errors is closed and reopened with backoff; its health shows in /health and in the
heartbeat ("down" with the reason), and the box keeps selling (the lane answers 409 "scale not ready").
"""
from __future__ import annotations

import asyncio
import logging
import time

import serial

from edge.devices.events import Garbage, ScaleStatus, Weight

REOPEN_BACKOFF_MAX_S = 5.0
READ_CHUNK = 256
READ_TIMEOUT_S = 0.05
STABLE_FRESH_MS = 700  # a continuous scale's last stable reading is usable for this long
log = logging.getLogger("freshmesh.edge.devices")


class DeviceNotReady(RuntimeError):
    """The device cannot give what was asked (unstable, not connected, overloaded): the lane answers 409."""


class SerialDevice:
    def __init__(self, name: str, port: str, codec, baudrate: int = 9600, bytesize: int = 8, parity: str = "N",
                 on_event=None) -> None:
        self.name, self.port, self.codec = name, port, codec
        self.settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity, "timeout": READ_TIMEOUT_S}
        self.on_event = on_event
        self.serial: serial.Serial | None = None
        self.state, self.detail = "down", "not opened yet"
        self.garbage = 0
        self.task: asyncio.Task | None = None

    def start(self) -> "SerialDevice":
        self.task = asyncio.create_task(self._run(), name=f"device-{self.name}")
        return self

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self._close()

    def _close(self) -> None:
        if self.serial is not None:
            try:
                self.serial.close()
            except Exception:  # noqa: BLE001 - closing a dead port may fail; it is gone either way
                pass
            self.serial = None

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                self.serial = await asyncio.to_thread(serial.Serial, self.port, **self.settings)
                self.state, self.detail, delay = "ok", f"open at {self.settings['baudrate']} baud", 0.1
                log.info("%s: opened %s", self.name, self.port)
                while True:
                    data = await asyncio.to_thread(self.serial.read, READ_CHUNK)
                    if data:
                        await self._feed(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - unplugged, permission, I/O error: reopen with backoff
                self.state, self.detail = "down", f"{type(exc).__name__}: {exc}"
                log.warning("%s on %s: %s; reopening in %.1fs", self.name, self.port, self.detail, delay)
                self._close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, REOPEN_BACKOFF_MAX_S)

    async def _feed(self, data: bytes) -> None:
        for event in self.codec.feed(data):
            if isinstance(event, Garbage):
                self.garbage += 1
                self.state, self.detail = "degraded", f"garbage from the port: {event.reason}"
            else:
                if self.state == "degraded":
                    self.state, self.detail = "ok", "recovered"
                await self.handle(event)

    async def handle(self, event) -> None:
        if self.on_event is not None:
            await self.on_event(event)

    async def write(self, data: bytes) -> None:
        if self.serial is None:
            raise DeviceNotReady(f"{self.name} is not connected ({self.detail})")
        await asyncio.to_thread(self.serial.write, data)


class Scale(SerialDevice):
    """`read_stable()` gives grams from a stable, in-range reading, or raises DeviceNotReady saying why."""

    def __init__(self, *args, protocol: str = "toledo8217", capacity_g: int = 15_000, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.protocol, self.capacity_g = protocol, capacity_g
        self.last: tuple[object, int] | None = None
        self.last_weight: Weight | None = None  # for 8217 scales that answer "unchanged"
        self._waiters: list[asyncio.Future] = []

    async def handle(self, event) -> None:
        self.last = (event, time.monotonic_ns() // 1_000_000)
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(event)
        self._waiters = []

    def _verdict(self, event) -> int:
        if isinstance(event, ScaleStatus):
            why = [n for n in ("motion", "over_capacity", "under_zero") if getattr(event, n)]
            if event.unchanged and self.last_weight is not None:
                return self._verdict(self.last_weight)
            raise DeviceNotReady(f"scale not stable: {', '.join(why) or 'no reading'}")
        if not event.stable:
            raise DeviceNotReady("scale not stable: motion")
        if event.grams <= 0:
            raise DeviceNotReady("scale reads zero: put the item on the scale")
        if event.grams > self.capacity_g:
            raise DeviceNotReady(f"over the scale's capacity ({self.capacity_g} g)")
        self.last_weight = event
        return event.grams

    async def read_stable(self, timeout_s: float = 1.5) -> int:
        if self.serial is None:
            raise DeviceNotReady(f"scale not connected ({self.detail})")
        if self.protocol == "continuous":
            if self.last is not None and time.monotonic_ns() // 1_000_000 - self.last[1] <= STABLE_FRESH_MS:
                return self._verdict(self.last[0])
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        if self.protocol == "toledo8217":
            await self.write(b"W")
        try:
            return self._verdict(await asyncio.wait_for(fut, timeout_s))
        except asyncio.TimeoutError:
            raise DeviceNotReady("the scale did not answer") from None


class Printer(SerialDevice):
    async def print(self, ticket: bytes) -> None:
        try:
            await self.write(ticket)
        except Exception as exc:  # noqa: BLE001 - the sale stands; the receipt can be reprinted
            log.error("printer: %s", exc)
            self.state, self.detail = "down", str(exc)
