"""An edge box: one store's StoreDb, StoreActor, devices, sync and lane API, wired and supervised.

A watchdog restarts a failed device or sync task without touching the actor's state; the actor task itself is
restarted too (its state is in SQLite and in the carts it keeps).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

from edge import appliance, coupons
from edge.cashier_pins import CashierPins
from edge.core import stall_lanes
from edge.core.clock_watch import ClockWatch
from edge.devices.escpos import PrinterReplies
from edge.devices.events import Scan
from edge.devices.scale_codecs import CODECS, DEFAULT_SCALE
from edge.devices.scanner_codec import ScannerCodec
from edge.devices.serial_driver import SCALE_CAPACITY_G, Printer, Scale, SerialDevice
from edge.disk import DEFAULT_LOW_WATER_BYTES, DiskWatch
from edge.label_scales import LabelScales
from edge.store_actor import StoreActor
from edge.store_db import StoreDb
from edge.sync import Sync
from protocol.clock import ReadingClock
from protocol.ids import IdFactory
from protocol.points import survey_key
from protocol.policy import (
    DEFAULT_ONLINE_RATIO_BP,
    OFFLINE_ALLOWANCE_FEN,
    STORE_CASH_TOPUP_DAY_CAP_FEN,
    member_lookup_key,
)

WATCHDOG_S = 1.0
log = logging.getLogger("freshmesh.edge")


class EdgeBox:
    def __init__(self, config: dict, clock=None) -> None:
        self.config = config
        self.store_id = config["store_id"]
        self.clock = clock or ReadingClock(time.time_ns, time.monotonic_ns)
        self.ids = IdFactory(self.clock.now_ms, lambda: int.from_bytes(os.urandom(10), "big"))
        self.store_db = StoreDb(Path(config["data_dir"]) / f"{self.store_id}.sqlite", self._member_lookup_key())
        self.devices: dict[str, SerialDevice] = {}
        self.scale: Scale | None = None
        self.printer: Printer | None = None
        self.label_scales = LabelScales([], self.clock, self.clock.now_ms)  # devices.label_scales: edge/label_scales.py
        self.actor: StoreActor | None = None
        self.sync: Sync | None = None
        self.cashier_pins = CashierPins(config.get("cashiers", {}))  # cashier id -> argon2 hash of their PIN
        self._tasks: dict[str, asyncio.Task] = {}
        self.clock_watch = ClockWatch()  # wall clock jumps, noticed and shown (edge/core/clock_watch.py)
        self.started_seq = 0  # the last event seq before this run: later ones were stamped on this run's clocks
        self.disk = DiskWatch(Path(config["data_dir"]), config.get("disk_low_water_bytes", DEFAULT_LOW_WATER_BYTES))

    async def start(self) -> EdgeBox:
        await self.store_db.open()
        self._make_devices()
        self.actor = StoreActor(self.store_id, self.store_db, self.clock, self.ids, printer=self.printer,
                                ratio_bp=self.config.get("online_ratio_bp", DEFAULT_ONLINE_RATIO_BP),
                                floor_limit_fen=self.config.get("offline_allowance_fen",
                                                                self.config.get("floor_limit_fen", OFFLINE_ALLOWANCE_FEN)),
                                member_lookup_key=self._member_lookup_key(),
                                cash_topup_day_cap_fen=self.config.get("cash_topup_day_cap_fen",
                                                                       STORE_CASH_TOPUP_DAY_CAP_FEN))
        if self.config.get("nats_password"):  # the receipts' survey links, signed as the cloud can check
            self.actor.survey = (survey_key(self._password(), self.store_id), self.config.get("survey_url_base", ""))
        self.actor.stall_lanes = stall_lanes.parse_config(self.config.get("stall_lanes"))  # edge/core/stall_lanes.py
        self.actor.show_jin = bool(self.config.get("show_jin"))  # printed receipts say jin too (edge/core/receipt_ticket)
        world = None
        if self.config.get("world"):
            world = json.loads(Path(self.config["world"]).read_text())
        await self.actor.load(world)
        self.started_seq = self.actor.last_seq
        self.actor.on_books = self.label_scales.books_changed  # a new catalogue goes to the label scales
        self.label_scales.store_id = self.store_id
        self.label_scales.record_label = lambda label, actor=self.actor: actor.ask("scale_label", label=label)
        self.label_scales.books_changed(self.actor.books)
        self._tasks["label_markdowns"] = asyncio.create_task(self.label_scales.follow_markdowns(self.store_id))
        self._tasks["actor"] = asyncio.create_task(self.actor.run(), name="actor")
        for device in self.devices.values():
            device.start()
        if self.config.get("nats_url"):
            self.sync = await Sync(self, self.config["nats_url"], f"store_{self.store_id}", self._password()).start()
        self._tasks["watchdog"] = asyncio.create_task(self._watchdog(), name="watchdog")
        return self

    def _password(self) -> str:
        """This store's own NATS password (`nats_password`, as `freshmesh stores credentials` writes it)."""
        password = self.config.get("nats_password")
        if not password:
            raise ValueError(f"store {self.store_id}: no nats_password in its configuration (write it with "
                             f"`freshmesh stores credentials {self.store_id}`, or set FRESHMESH_STORE_PASSWORD)")
        return str(password)

    def _member_lookup_key(self) -> bytes | None:
        """From this store's own NATS password (as the cloud computes it): None for a box given no credentials."""
        if not self.config.get("nats_password"):
            return None
        return member_lookup_key(self._password(), self.store_id)

    def _make_devices(self) -> None:
        devices = self.config.get("devices", {})
        if "scale" in devices:
            d = devices["scale"]
            name = d.get("protocol", DEFAULT_SCALE)
            if name not in CODECS:
                raise ValueError(f"scale protocol {name!r} is not known; one of {', '.join(sorted(CODECS))}")
            codec = CODECS[name]()
            self.scale = Scale("scale", d["port"], codec, self.clock, codec.SERIAL.overridden(d),
                               capacity_g=d.get("capacity_g", SCALE_CAPACITY_G))
            self.devices["scale"] = self.scale
        if "scanner" in devices:
            d = devices["scanner"]
            lane = d.get("lane", "1")

            async def scanned(event, lane=lane):
                if isinstance(event, Scan):
                    try:
                        if coupons.looks_like_code(event.code):  # a coupon: to the cart as one (edge/coupons.py)
                            await coupons.scan(self, lane, event.code)
                        else:
                            await self.actor.ask("scan", lane=lane, code=event.code)
                    except Exception as exc:  # noqa: BLE001 - a bad scan beeps at the lane; it never stops the box
                        log.info("scan %s on lane %s refused: %s", event.code, lane, exc)
            self.devices["scanner"] = SerialDevice("scanner", d["port"], ScannerCodec(), self.clock,
                                                   ScannerCodec.SERIAL.overridden(d), on_event=scanned)
        if "printer" in devices:
            d = devices["printer"]
            self.printer = Printer("printer", d["port"], PrinterReplies(), self.clock,
                                   PrinterReplies.SERIAL.overridden(d))
            self.devices["printer"] = self.printer
        self.label_scales = LabelScales(devices.get("label_scales", []), self.clock, self.clock.now_ms)
        self.devices.update({scale.name: scale for scale in self.label_scales.scales})

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_S)
            if jump := self.clock_watch.observe(self.clock.now_ms(), self.clock.monotonic_ms()):
                log.warning("store %s: the wall clock jumped by %+d ms", self.store_id, jump.by_ms)
            task = self._tasks.get("actor")
            if task is not None and task.done():
                why = "cancelled" if task.cancelled() else task.exception()
                log.error("the store actor stopped (%s); restarting it", why)
                if self.actor is not None:
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
                "outbox_depth": await self.store_db.outbox_depth(),
                "devices": {**{k: {"state": s, "detail": d} for k, (s, d) in self.device_health().items()},
                            **self.label_scales.health()},
                "catalogue": len(catalogue) if (catalogue := self.actor and self.actor.catalogue) else False,
                "sales": await self.store_db.count("sales"),
                "refused_events": await self.store_db.count("refused_events"),  # set aside: the cloud will not apply
                **await appliance.health(self)}  # disk, version, warnings: edge/appliance.py

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for device in self.devices.values():
            await device.stop()
        if self.sync is not None:
            await self.sync.stop()
        await self.store_db.close()
