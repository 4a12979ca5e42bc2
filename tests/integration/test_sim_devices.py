"""The device simulators on real pseudo-terminals, read with pyserial and decoded by the edge box's own codecs.

No servers: ptys, pyserial and (for the CLI) one `python -m simulators.sim_devices` subprocess per test.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import serial

from edge.devices.escpos import Ticket
from edge.devices.events import Garbage, ScaleStatus, Scan, Weight
from edge.devices.scale_codecs import ContinuousCodec, Toledo8217Codec
from edge.devices.scanner_codec import ScannerCodec
from simulators.devices import ContinuousScale, ReceiptPrinter, Scanner, Toledo8217Scale

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCALES = {"toledo8217": (Toledo8217Scale, Toledo8217Codec), "continuous": (ContinuousScale, ContinuousCodec)}


def open_port(path: str, protocol: str | None = None) -> serial.Serial:
    """As edge.box opens them: 8217 scales 7E1, everything else 8N1, 9600 baud."""
    if protocol == "toledo8217":
        return serial.Serial(path, 9600, bytesize=7, parity="E", timeout=0.05)
    return serial.Serial(path, 9600, timeout=0.05)


def read_until(ser: serial.Serial, codec, done, timeout: float = 2.0, chunks: list | None = None) -> list:
    """Feeds what arrives (chunk by chunk, as it arrives) to `codec` until `done(events)`; returns the events."""
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = ser.read(1)
        if data:
            data += ser.read(ser.in_waiting)
            if chunks is not None:
                chunks.append(data)
            events += codec.feed(data)
            if done(events):
                return events
    raise AssertionError(f"timed out; events so far: {events}")


def real(events) -> list:
    return [e for e in events if not isinstance(e, Garbage)]


def latest(protocol: str, ser: serial.Serial):
    """The scale's reading now: a fresh poll answer (8217), or the second whole frame from now (continuous: the
    first may have been made just before the change)."""
    ser.reset_input_buffer()
    if protocol == "toledo8217":
        ser.write(b"W")
        return real(read_until(ser, Toledo8217Codec(), real))[-1]
    return real(read_until(ser, ContinuousCodec(), lambda ev: len(real(ev)) >= 2))[-1]


@pytest.fixture(params=sorted(SCALES))
def scale(request, tmp_path):
    protocol = request.param
    device = SCALES[protocol][0](tmp_path / "scale", grams=1250, seed=11)
    ser = open_port(device.path, protocol)
    yield protocol, device, ser
    ser.close()
    device.close()


def test_the_scale_reports_the_weight_set(scale):
    protocol, device, ser = scale
    assert latest(protocol, ser) == Weight(grams=1250, stable=True)
    device.set_grams(2_000)
    assert latest(protocol, ser) == Weight(grams=2000, stable=True)
    device.set_grams(-20)
    assert latest(protocol, ser) == ScaleStatus(under_zero=True)


def test_continuous_scale_streams_18_byte_frames_ten_times_a_second(tmp_path):
    device = ContinuousScale(tmp_path / "cscale", grams=2345)
    ser = open_port(device.path)
    try:
        ser.reset_input_buffer()
        start, raw = time.monotonic(), b""
        while time.monotonic() - start < 0.55:
            raw += ser.read(64)
        frames = [f for f in raw.split(b"\r\n") if f][1:-1]  # the first and last may be cut by the window
        assert 3 <= len(frames) <= 6 and set(frames) == {b"ST,GS,+002.345kg"}
        assert ContinuousCodec().feed(frames[0] + b"\r\n") == [Weight(grams=2345, stable=True)]
    finally:
        ser.close()
        device.close()


def test_drift_creeps_the_reading_until_drift_zero(scale):
    protocol, device, ser = scale
    device.set_grams(1000)
    device.drift(500)
    time.sleep(0.2)
    first = latest(protocol, ser).grams
    time.sleep(0.2)
    second = latest(protocol, ser).grams
    assert 1000 + 100 <= first < second <= 1000 + 500 * 2
    device.drift(0)
    held = latest(protocol, ser)
    time.sleep(0.15)
    assert latest(protocol, ser) == held and held.stable


def test_unstable_for_a_moment_then_stable_again(scale):
    protocol, device, ser = scale
    device.unstable(0.4)
    moving = latest(protocol, ser)
    if protocol == "toledo8217":  # an 8217 sends a status byte, never a moving weight
        assert moving.motion and not moving.over_capacity
    else:
        assert not moving.stable and abs(moving.grams - 1250) <= 15
    time.sleep(0.45)
    assert latest(protocol, ser) == Weight(grams=1250, stable=True)


def test_overload_is_an_over_capacity_status_in_both_protocols(scale):
    protocol, device, ser = scale
    assert device.overload() > device.capacity_g
    assert latest(protocol, ser) == ScaleStatus(over_capacity=True)
    device.set_grams(500)
    assert latest(protocol, ser) == Weight(grams=500, stable=True)


def test_garbage_is_reported_by_the_edge_codec_which_then_reads_the_right_weight(scale):
    protocol, device, ser = scale
    codec = SCALES[protocol][1]()
    ser.reset_input_buffer()
    noise = device.garbage(40)
    assert len(noise) == 40
    if protocol == "toledo8217":
        time.sleep(0.05)  # the noise arrives first, then the answer to this poll
        ser.write(b"W")
    events = read_until(ser, codec, lambda ev: any(isinstance(e, Garbage) for e in ev) and
                        real(ev) and real(ev)[-1] == Weight(grams=1250, stable=True)
                        and ev.index(real(ev)[-1]) > min(i for i, e in enumerate(ev) if isinstance(e, Garbage)))
    assert real(events)[-1] == Weight(grams=1250, stable=True)


def test_split_frames_arrive_in_pieces_and_still_decode(scale, tmp_path):
    protocol, device, ser = scale
    device.split_frames(True)
    ser.reset_input_buffer()
    chunks: list[bytes] = []
    if protocol == "toledo8217":
        ser.write(b"W")
        events = read_until(ser, Toledo8217Codec(), real, chunks=chunks)
    else:
        codec = ContinuousCodec()
        read_until(ser, codec, lambda ev: len(real(ev)) >= 1)  # sync on a frame end, then take the next ones
        events = read_until(ser, codec, lambda ev: len(real(ev)) >= 3, chunks=chunks)
    assert real(events)[-1] == Weight(grams=1250, stable=True) and not any(isinstance(e, Garbage) for e in events)
    assert len(chunks) > len(real(events))  # the frames came in more reads than there were frames

    scanner = Scanner(tmp_path / "scanner", seed=5)
    port = open_port(scanner.path)
    try:
        scanner.split_frames(True)
        threading.Thread(target=scanner.scan, args=("6901234567892",)).start()  # a split write takes a while
        chunks = []
        assert read_until(port, ScannerCodec(), real, chunks=chunks) == [Scan("6901234567892")] and len(chunks) > 1
    finally:
        port.close()
        scanner.close()


@pytest.fixture
def scanner(tmp_path):
    device = Scanner(tmp_path / "scanner", seed=3)
    ser = open_port(device.path)
    yield device, ser
    ser.close()
    device.close()


def test_scanner_sends_a_terminated_line(scanner):
    device, ser = scanner
    device.scan("6901234567892")
    device.scan("2112345015002", terminator=b"\t")
    assert read_until(ser, ScannerCodec(), lambda ev: len(ev) == 2) == [Scan("6901234567892"), Scan("2112345015002")]


def test_scanner_garbage_costs_at_most_the_read_it_hits(scanner):
    device, ser = scanner
    device.garbage(30)
    device.scan("6901234567892")  # noise without a terminator runs into this read, as on a real line
    device.scan("4006381333931")
    events = read_until(ser, ScannerCodec(), lambda ev: Scan("4006381333931") in ev)
    assert any(isinstance(e, Garbage) for e in events) and events[-1] == Scan("4006381333931")


def test_disconnect_fails_the_open_port_then_the_same_path_works_again(scanner):
    device, ser = scanner
    started = time.monotonic()
    device.disconnect(0.4)
    assert not device.plugged
    with pytest.raises(serial.SerialException):
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            ser.read(1)  # a pulled cable: the read fails ("device reports readiness to read but returned no data")
    ser.close()
    while not device.plugged and time.monotonic() - started < 3:
        time.sleep(0.02)
    assert device.plugged and time.monotonic() - started >= 0.35
    again = open_port(device.path)
    try:
        device.scan("6901234567892")
        assert read_until(again, ScannerCodec(), real) == [Scan("6901234567892")]
    finally:
        again.close()


def test_close_during_a_disconnect_does_not_come_back(tmp_path):
    device = Scanner(tmp_path / "scanner")
    device.disconnect(0.1)
    device.close()
    time.sleep(0.2)
    assert not device.plugged and not os.path.lexists(tmp_path / "scanner")


def test_printer_decodes_a_ticket_written_through_the_port(tmp_path):
    receipts_file = tmp_path / "receipts.txt"
    printer = ReceiptPrinter(tmp_path / "printer", receipts_file=receipts_file)
    ser = open_port(printer.path)
    try:
        ticket = (Ticket().text("FreshMesh S001", bold=True, size=2, align="center").columns("菠菜 0.500kg", "6.00")
                  .columns("TOTAL", "6.00").qr("SALE:01HZX").cut())
        ser.write(ticket[:30])
        time.sleep(0.05)  # the rest in a later read: the decoder waits for a whole command
        ser.write(ticket[30:])
        receipt = printer.next_receipt(timeout=2, after=0)
        assert [line.text for line in receipt.lines if line.text][:1] == ["FreshMesh S001"] and receipt.lines[0].bold
        assert "菠菜 0.500kg" in receipt.text and receipt.qr == ["SALE:01HZX"] and receipt.errors == []
        assert receipt.text.endswith("[QR] SALE:01HZX")
        assert bytes(printer.received) == ticket
        filed = receipts_file.read_text(encoding="utf-8")
        assert filed.startswith("=== receipt 1: ") and receipt.text in filed
        with pytest.raises(TimeoutError, match="no receipt #2"):
            printer.next_receipt(timeout=0.1)
    finally:
        ser.close()
        printer.close()


# ---- the CLI through stdin ------------------------------------------------------------------------------------
def _interruptible() -> None:
    """Ctrl-C reaches the CLI as in a terminal even when the tests run in the background (`nohup make test &`): a
    background job's children start with SIGINT ignored, and Python then installs no KeyboardInterrupt for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Cli:
    """`python -m simulators.sim_devices` with stdout read by a thread, so every wait has a timeout."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "simulators.sim_devices", *args], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, encoding="utf-8", bufsize=1, preexec_fn=_interruptible)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, match, timeout: float = 3.0) -> list[str]:
        """Lines up to and including the first one `match` accepts."""
        seen, deadline = [], time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"timed out waiting; got {seen}") from None
            if line is None:
                raise AssertionError(f"simulator exited ({self.proc.wait()}): {seen} {self.proc.stderr.read()}")
            seen.append(line)
            if match(line):
                return seen

    def send(self, command: str) -> str:
        """The command's answer line (echoes before it are skipped)."""
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.until(lambda line: line.startswith(("ok", "error:")))[-1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def cli(tmp_path):
    started = []

    def start(*args: str) -> tuple[Cli, dict]:
        c = Cli("--dir", str(tmp_path / "devs"), "--seed", "3", *args)
        started.append(c)
        config = json.loads(c.until(lambda line: line.startswith("{"))[-1])
        c.until(lambda line: line.startswith("# ready"))
        return c, config
    yield start
    for c in started:
        c.stop()


def test_cli_drives_the_devices_answers_every_command_and_removes_its_links(cli, tmp_path):
    devs = tmp_path / "devs"
    sim, config = cli("--receipts", str(tmp_path / "receipts.txt"))
    assert config == {"devices": {"scale": {"port": str(devs / "scale"), "protocol": "toledo8217"},
                                  "scanner": {"port": str(devs / "scanner")},
                                  "printer": {"port": str(devs / "printer")}}}
    assert all((devs / name).is_symlink() for name in ("scale", "scanner", "printer"))

    assert sim.send("weigh 1234") == "ok scale: 1234 g on the platter"
    scale = open_port(config["devices"]["scale"]["port"], "toledo8217")
    scanner = open_port(config["devices"]["scanner"]["port"])
    printer = open_port(config["devices"]["printer"]["port"])
    try:
        assert latest("toledo8217", scale) == Weight(grams=1234, stable=True)
        assert sim.send("bogus 1").startswith("error: unknown command 'bogus'; commands: weigh, drift,")
        assert sim.send("weigh abc") == "error: weigh: 'abc' is not grams, a whole number like 1234"
        assert sim.send("weigh") == "error: usage: weigh GRAMS (1 argument, got 0)"
        assert sim.send("garbage toaster 3") == "error: no device 'toaster'; devices: scale, scanner, printer"
        assert sim.send("split scale sideways") == "error: split: expected 'on' or 'off', got 'sideways'"
        assert sim.send("unstable -1") == "error: unstable: -1 is out of range (0.001 to 3600)"

        assert sim.send("scan 6901234567892") == "ok scanner: sent 6901234567892"
        assert read_until(scanner, ScannerCodec(), real) == [Scan("6901234567892")]
        assert sim.send("overload") == "ok scale: 16000 g on a 15000 g scale (overload until the next weigh)"
        assert latest("toledo8217", scale) == ScaleStatus(over_capacity=True)
        assert sim.send("unstable 0.3") == "ok scale: in motion for 0.3 s, then stable"
        assert sim.send("drift 5").startswith("ok scale: drifting +5 g/s")
        assert sim.send("garbage scale 20") == "ok scale: sent 20 noise bytes"
        assert sim.send("split scanner on") == "ok scanner: frames split into pieces"
        before = os.readlink(devs / "printer")
        assert sim.send("disconnect printer 0.2").startswith("ok printer: unplugged")
        printer.close()
        deadline = time.monotonic() + 3
        while os.readlink(devs / "printer") == before and time.monotonic() < deadline:
            time.sleep(0.02)  # replugged: the link points to a new pty
        printer = open_port(config["devices"]["printer"]["port"])
        printer.write(Ticket().text("FreshMesh S001", align="center").text("猪肉 1.250kg").qr("SALE:42").cut())
        echoed = sim.until(lambda line: line.startswith("====="))
        assert echoed[0].startswith("=== receipt 1: ") and "| 猪肉 1.250kg" in echoed and "| [QR] SALE:42" in echoed
        sim.proc.stdin.write("receipts\n")
        sim.proc.stdin.flush()
        listing = sim.until(lambda line: line.startswith(("ok", "error:")))
        assert listing[0].startswith("=== receipt 1: ") and "| [QR] SALE:42" in listing
        assert listing[-1] == "ok 1 receipts"
        assert "猪肉 1.250kg" in (tmp_path / "receipts.txt").read_text(encoding="utf-8")
    finally:
        for port in (scale, scanner, printer):
            port.close()
    assert sim.send("status").startswith("ok scale ")
    assert sim.send("quit") == "ok bye"
    assert sim.proc.wait(5) == 0
    assert not any(os.path.lexists(devs / name) for name in ("scale", "scanner", "printer"))


@pytest.mark.parametrize("how", ["eof", "sigint", "sigterm"])
def test_cli_stops_cleanly_on_eof_and_signals(cli, tmp_path, how):
    sim, _ = cli("--scale-protocol", "continuous")
    assert sim.send("weigh 10") == "ok scale: 10 g on the platter"
    if how == "eof":
        sim.proc.stdin.close()
    else:
        sim.proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
    sim.until(lambda line: line.startswith("# stopped"))
    assert sim.proc.wait(5) == 0
    assert not any(os.path.lexists(tmp_path / "devs" / name) for name in ("scale", "scanner", "printer"))


# ---- the edge box on the simulated bench ----------------------------------------------------------------------
async def test_edge_box_sells_through_the_bench_and_its_receipt_decodes(tmp_path):
    """The box opens the CLI's config as is, weighs through noise and split frames, and prints a readable receipt."""
    import asyncio

    import httpx

    from edge.box import EdgeBox
    from edge.lanes import build_lane_app
    from simulators.sim_devices import Bench

    world = ROOT / "cloud" / "data" / "default_world.json"
    weighed = next(p for p in json.loads(world.read_text())["catalogue"] if p["unit"] == "kg" and p["plu"])
    bench = Bench(tmp_path / "devs", "toledo8217", seed=9, say=lambda text: None)
    edge = await EdgeBox({"store_id": "S012", "data_dir": str(tmp_path / "d"), "world": str(world),
                          **bench.edge_config()}).start()
    try:
        transport = httpx.ASGITransport(app=build_lane_app(edge))
        async with httpx.AsyncClient(transport=transport, base_url="http://lane") as http:
            for _ in range(60):
                if all(d.state == "ok" for d in edge.devices.values()):
                    break
                await asyncio.sleep(0.05)
            assert bench.handle("weigh 1375").startswith("ok")
            assert bench.handle("split scale on").startswith("ok")
            assert bench.handle("garbage scale 25").startswith("ok")
            await asyncio.sleep(0.1)
            r = await http.post("/lanes/1/weigh", json={"sku": weighed["sku"]})
            assert r.status_code == 200 and r.json()["line"]["weight_g"] == 1375
            assert edge.devices["scale"].garbage >= 1  # the box saw the noise and still read the weight
            sale = (await http.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 100_000})).json()
            receipt = await asyncio.to_thread(bench.printer.next_receipt, 3.0, 0)
        assert receipt.qr == [f"SALE:{sale['sale_id']}"] and receipt.errors == []
        assert receipt.lines[0].text == "FreshMesh S012" and receipt.lines[0].bold
        assert any(line.text.startswith("TOTAL") for line in receipt.lines) and "Paid by cash" in receipt.text
    finally:
        await edge.stop()
        bench.close()
