"""An edge box: one store's shard, StoreActor, devices, sync and lane API, wired and supervised.

A watchdog restarts a failed device or sync task without touching the actor's state; the actor task itself is
restarted too (its state is in SQLite and in the carts it keeps).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
from pathlib import Path

from edge.devices.scale_codecs import CODECS
from edge.devices.scanner_codec import ScannerCodec
from edge.devices.serial_driver import Printer, Scale, SerialDevice
from edge.devices.events import Scan
from edge.shard import Shard
from edge.store_actor import StoreActor
from edge.sync import Sync
from protocol.clock import SystemClock
from protocol.ids import IdFactory

WATCHDOG_S = 1.0
log = logging.getLogger("freshmesh.edge")


def store_password(secret: str, store_id: str) -> str:
    """Same derivation as the embedded stack's (a deployment hands each box its own password instead)."""
    return hmac.new(secret.encode(), f"store:{store_id}".encode(), hashlib.sha256).hexdigest()[:32]


class EdgeBox:
    def __init__(self, config: dict, clock=None) -> None:
        self.config = config
        self.store_id = config["store_id"]
        self.clock = clock or SystemClock()
        self.ids = IdFactory(self.clock.now_ms, lambda: int.from_bytes(os.urandom(10), "big"))
        self.shard = Shard(Path(config["data_dir"]) / f"{self.store_id}.sqlite")
        self.devices: dict[str, SerialDevice] = {}
        self.scale: Scale | None = None
        self.printer: Printer | None = None
        self.actor: StoreActor | None = None
        self.sync: Sync | None = None
        self._tasks: dict[str, asyncio.Task] = {}

    async def start(self) -> "EdgeBox":
        await self.shard.open()
        self._make_devices()
        self.actor = StoreActor(self.store_id, self.shard, self.clock, self.ids, printer=self.printer,
                                ratio_bp=self.config.get("online_ratio_bp", 4000),
                                floor_limit_fen=self.config.get("floor_limit_fen", 5000))
        world = None
        if self.config.get("world"):
            world = json.loads(Path(self.config["world"]).read_text())
        await self.actor.load(world)
        self._tasks["actor"] = asyncio.create_task(self.actor.run(), name="actor")
        for device in self.devices.values():
            device.start()
        if self.config.get("nats_url"):
            self.sync = await Sync(self, self.config["nats_url"], f"store_{self.store_id}", self._password()).start()
        self._tasks["watchdog"] = asyncio.create_task(self._watchdog(), name="watchdog")
        return self

    def _password(self) -> str:
        if self.config.get("nats_password"):
            return self.config["nats_password"]
        return store_password(self.config["store_secret"], self.store_id)

    def _make_devices(self) -> None:
        devices = self.config.get("devices", {})
        if "scale" in devices:
            d = devices["scale"]
            self.scale = Scale("scale", d["port"], CODECS[d.get("protocol", "toledo8217")](),
                               baudrate=d.get("baudrate", 9600), bytesize=d.get("bytesize", 7 if d.get("protocol", "toledo8217") == "toledo8217" else 8),
                               parity=d.get("parity", "E" if d.get("protocol", "toledo8217") == "toledo8217" else "N"),
                               protocol=d.get("protocol", "toledo8217"), capacity_g=d.get("capacity_g", 15_000))
            self.devices["scale"] = self.scale
        if "scanner" in devices:
            d = devices["scanner"]
            lane = d.get("lane", "1")

            async def scanned(event, lane=lane):
                if isinstance(event, Scan):
                    try:
                        await self.actor.ask("scan", lane=lane, code=event.code)
                    except Exception as exc:  # noqa: BLE001 - a bad scan beeps at the lane; it never stops the box
                        log.info("scan %s on lane %s refused: %s", event.code, lane, exc)
            self.devices["scanner"] = SerialDevice("scanner", d["port"], ScannerCodec(), baudrate=d.get("baudrate", 9600),
                                                   on_event=scanned)
        if "printer" in devices:
            d = devices["printer"]
            self.printer = Printer("printer", d["port"], ScannerCodec(), baudrate=d.get("baudrate", 9600))
            self.devices["printer"] = self.printer

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_S)
            task = self._tasks.get("actor")
            if task is not None and task.done():
                log.error("the store actor stopped (%s); restarting it", task.exception() if not task.cancelled() else "cancelled")
                self._tasks["actor"] = asyncio.create_task(self.actor.run(), name="actor")
            for name, device in self.devices.items():
                if device.task is not None and device.task.done():
                    log.error("device %s task ended; restarting it", name)
                    device.start()
            if self.sync is not None:
                for t in list(self.sync._tasks):
                    if t.done() and not t.cancelled() and t.exception() is not None:
                        log.error("sync task %s failed (%s); restarting sync", t.get_name(), t.exception())
                        await self.sync.stop()
                        self.sync = await Sync(self, self.config["nats_url"], f"store_{self.store_id}",
                                               self._password()).start()
                        break

    def device_health(self) -> dict[str, tuple[str, str]]:
        health = {name: (d.state, d.detail) for name, d in self.devices.items()}
        for name in ("scale", "scanner", "printer"):
            health.setdefault(name, ("absent", "not configured"))
        return health

    async def health(self) -> dict:
        return {"store_id": self.store_id, "online": bool(self.actor and self.actor.online),
                "outbox_depth": await self.shard.outbox_depth(),
                "devices": {k: {"state": s, "detail": d} for k, (s, d) in self.device_health().items()},
                "catalogue": self.actor.catalogue is not None and len(self.actor.catalogue),
                "sales": await self.shard.count("sales")}

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for device in self.devices.values():
            await device.stop()
        if self.sync is not None:
            await self.sync.stop()
        await self.shard.close()
