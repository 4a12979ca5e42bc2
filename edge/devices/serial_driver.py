"""Serial devices through pyserial: a reader thread per port feeding a sans-I/O codec.

A port that disappears or errors is closed and reopened with backoff; its health shows in /health and in the
heartbeat ("down" with the reason), and the box keeps selling (the lane answers 409 "scale not ready").
How a port is opened and whether a scale is polled are the codec's traits (edge.devices.traits), not branches here.
"""
from __future__ import annotations

import asyncio
import logging

import serial

from edge.devices.events import Garbage, ScaleStatus, Weight
from edge.devices.traits import SerialSettings
from protocol.clock import Clock

REOPEN_BACKOFF_MIN_S = 0.1
REOPEN_BACKOFF_MAX_S = 5.0
READ_CHUNK = 256
READ_TIMEOUT_S = 0.05
WRITE_TIMEOUT_S = 2.0  # a printer that stops taking bytes (paper out, flow control) fails the write, not the till
SCALE_ANSWER_TIMEOUT_S = 1.5
SCALE_CAPACITY_G = 15_000  # the usual counter scale; a box config's `capacity_g` says otherwise
SCALE_WAITERS_MAX = 16  # lanes waiting on one scale's next reading at once; more are told the scale is busy
log = logging.getLogger("freshmesh.edge.devices")


class DeviceNotReady(RuntimeError):
    """The device cannot give what was asked (unstable, not connected, overloaded): the lane answers 409."""


class SerialDevice:
    def __init__(self, name: str, port: str, codec, clock: Clock, settings: SerialSettings | None = None,
                 on_event=None) -> None:
        self.name, self.port, self.codec, self.clock = name, port, codec, clock
        self.serial_settings = settings or codec.SERIAL  # the codec's traits, unless the config overrides them
        self.on_event = on_event
        self.serial: serial.Serial | None = None
        self.state, self.detail = "down", "not opened yet"
        self.garbage = 0
        self.task: asyncio.Task | None = None

    def start(self) -> SerialDevice:
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
            except Exception as exc:  # noqa: BLE001 - closing a dead port may fail; it is gone either way
                log.debug("%s: closing %s: %s", self.name, self.port, exc)
            self.serial = None

    def _open(self) -> serial.Serial:
        s = self.serial_settings
        return serial.Serial(self.port, baudrate=s.baudrate, bytesize=s.bytesize, parity=s.parity, stopbits=s.stopbits,
                             timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S)

    async def _run(self) -> None:
        delay = REOPEN_BACKOFF_MIN_S
        while True:
            try:
                port = await asyncio.to_thread(self._open)
                self.serial = port
                self.state, self.detail, delay = "ok", f"open at {self.serial_settings}", REOPEN_BACKOFF_MIN_S
                log.info("%s: opened %s", self.name, self.port)
                while True:
                    data = await asyncio.to_thread(port.read, READ_CHUNK)
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
    """`read_stable()` gives grams from a stable, in-range reading, or raises DeviceNotReady saying why. A polled
    scale (its codec has `POLL`) is asked for each reading; a streaming one's latest reading is used while it is
    fresh (`FRESH_MS`), else the next one is awaited."""

    def __init__(self, *args, capacity_g: int = SCALE_CAPACITY_G, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.capacity_g = capacity_g
        self.last: tuple[object, int] | None = None
        self.last_weight: Weight | None = None  # for 8217 scales that answer "unchanged"
        self._waiters: list[asyncio.Future] = []

    async def handle(self, event) -> None:
        self.last = (event, self.clock.monotonic_ms())
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

    async def read_stable(self, timeout_s: float = SCALE_ANSWER_TIMEOUT_S) -> int:
        if self.serial is None:
            raise DeviceNotReady(f"scale not connected ({self.detail})")
        poll = self.codec.POLL
        if poll is None and self.last is not None and self.clock.monotonic_ms() - self.last[1] <= self.codec.FRESH_MS:
            return self._verdict(self.last[0])
        if len(self._waiters) >= SCALE_WAITERS_MAX:
            raise DeviceNotReady(f"the scale is busy: {SCALE_WAITERS_MAX} readings are already awaited")
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            if poll is not None:
                await self.write(poll)
            return self._verdict(await asyncio.wait_for(fut, timeout_s))
        except TimeoutError:
            raise DeviceNotReady("the scale did not answer") from None
        finally:
            if fut in self._waiters:  # timed out or failed: it waits no more
                self._waiters.remove(fut)


class Printer(SerialDevice):
    async def print(self, ticket: bytes) -> None:
        try:
            await self.write(ticket)
        except Exception as exc:  # noqa: BLE001 - the sale stands; the receipt can be reprinted
            log.error("printer: %s", exc)
            self.state, self.detail = "down", str(exc)
