"""A fleet of store edge boxes on one machine, each with its own shard, NATS user, lane API and (optionally)
its own scale, scanner, receipt printer and label scale on pseudo-terminals (the label scale gets the box's PLU
table, with the markdowns' prices, and prints the labels the demo's staff scan at the till: simulators/ops_labels.py).

Boxes are packed `per_process` to a `freshmesh edge` process (a config with a `stores` list) so that hundreds of
stores fit on a small machine; each box inside behaves exactly as it would alone on its own hardware.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cloud.embedded.process import listening_socket, spawn_quiet, tail
from loadtest.report import stop_process, wait_http
from simulators import ops_stocktake
from simulators.devices import ContinuousScale, ReceiptPrinter, Scanner, Toledo8217Scale
from simulators.label_scale import LabelScaleSim


@dataclass
class StoreDevices:
    scale: Toledo8217Scale | ContinuousScale
    scanner: Scanner
    printer: ReceiptPrinter
    label_scale: LabelScaleSim | None = None  # the service counter's label scale (edge/label_scales.py drives it)

    def config(self) -> dict:
        protocol = "toledo8217" if isinstance(self.scale, Toledo8217Scale) else "continuous"
        config: dict = {"scale": {"port": self.scale.path, "protocol": protocol},
                  "scanner": {"port": self.scanner.path, "lane": "1"},
                  "printer": {"port": self.printer.path}}
        if self.label_scale is not None:
            config["label_scales"] = [{"port": self.label_scale.path, "protocol": "fm-label"}]
        return config

    def close(self) -> None:
        for device in (self.scale, self.scanner, self.printer, self.label_scale):
            if device is not None:
                device.close()


class Fleet:
    def __init__(self, workdir: Path, world_path: Path, nats_address: str, password_of, per_process: int = 25,
                 devices: bool = False) -> None:
        self.workdir, self.world_path, self.nats_address = Path(workdir), world_path, nats_address
        self.password_of, self.per_process, self.with_devices = password_of, per_process, devices
        self.lanes: dict[str, str] = {}
        self.devices: dict[str, StoreDevices] = {}
        self.stocked: set[str] = set()  # stores whose shelves the simulators have filled
        self.procs: list[subprocess.Popen] = []

    def _devices_for(self, index: int, store_id: str) -> StoreDevices:
        folder = self.workdir / "dev" / store_id
        folder.mkdir(parents=True, exist_ok=True)
        # half the stores have a polled Toledo 8217 scale, half a continuously sending one
        scale = (Toledo8217Scale if index % 2 == 0 else ContinuousScale)(folder / "scale")
        devices = StoreDevices(scale, Scanner(folder / "scanner"), ReceiptPrinter(folder / "printer"),
                               LabelScaleSim(folder / "label_scale"))
        self.devices[store_id] = devices
        return devices

    def add(self, store_ids: list[str], timeout_s: float = 120) -> None:
        """Start boxes for `store_ids` and wait until every lane API answers."""
        new, owner = [s for s in store_ids if s not in self.lanes], {}
        for start in range(0, len(new), self.per_process):
            chunk = new[start:start + self.per_process]
            entries, sockets = [], []
            for store_id in chunk:
                sock = listening_socket()  # bound here, served there: no other process can take the port between
                sockets.append(sock)
                port = sock.getsockname()[1]
                entry = {"store_id": store_id, "http_port": port, "http_fd": sock.fileno(),
                         "nats_password": self.password_of(store_id)}
                if self.with_devices:
                    entry["devices"] = self._devices_for(len(self.lanes), store_id).config()
                entries.append(entry)
                self.lanes[store_id] = f"http://127.0.0.1:{port}"
            config = self.workdir / f"edge-{chunk[0]}.json"
            config.write_text(json.dumps({"data_dir": str(self.workdir / "edge"), "world": str(self.world_path),
                                          "nats_url": self.nats_address, "stores": entries,
                                          # a manager to approve stocktakes; the simulated tills are self-checkout
                                          # kiosks (no cashier signs in at them): edge/lane_guard.py
                                          **ops_stocktake.box_config(), "self_checkout_lanes": ["*"]}))
            log = config.with_suffix(".log")
            try:
                proc = spawn_quiet([sys.executable, "-m", "simulators.cli", "edge", "--config", str(config)],
                                   log_path=log, pass_fds=tuple(s.fileno() for s in sockets))
            finally:
                for sock in sockets:
                    sock.close()  # the box process has its own copies (or, if it did not start, nobody needs them)
            self.procs.append(proc)
            owner.update(dict.fromkeys(chunk, (proc, log)))
        for store_id in new:  # a box process that dies while starting is reported, not waited for
            proc, log = owner[store_id]
            try:
                wait_http(f"{self.lanes[store_id]}/health", timeout_s, proc)
            except RuntimeError as exc:
                raise RuntimeError(f"store {store_id}: {exc}; its log ends:\n{tail(log)}") from None

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        self.procs.clear()
        for devices in self.devices.values():
            devices.close()
