"""Virtual serial devices on pseudo-terminals: the edge box opens them with pyserial like real ports.

Each device owns a pty pair and exposes a stable path (a symlink to the current slave), so `unplug()` (close the
master: the box's reads fail) and `replug()` (a new pty behind the same path) behave like a USB cable pulled out
and put back.

Faults, on every device: `garbage(n)` sends n noise bytes, `split_frames(True)` writes each frame in small pieces
with short pauses (the host sees frames cut across reads), `disconnect(seconds)` unplugs and replugs later.
Scales (both protocols) take `set_grams`, `drift`, `unstable` and `overload`. The printer decodes what it is sent
into receipts (simulators.escpos_reader).

Threading: each device runs one thread (reads from the host, periodic `tick`); the control methods may be called
from any thread. A `write` is atomic with respect to other writes (split pieces of one frame are never interleaved
with another frame). Writes never block: what the host does not read is dropped, as on a real line.
"""
from __future__ import annotations

import errno
import logging
import os
import random
import select
import threading
import time
import tty
from pathlib import Path

from simulators.escpos_reader import EscPosReader, Receipt

TICK_S = 0.05
CAPACITY_G = 15_000  # the edge box's default scale capacity (edge.devices.serial_driver.Scale)
log = logging.getLogger("freshmesh.simulators.devices")
SPLIT_PAUSE_S = 0.02  # between the pieces of a split frame: 2-4 pieces span about a host read timeout (50 ms)


class PtyDevice:
    def __init__(self, link: Path, seed: int | None = None) -> None:
        self.link = Path(link)
        self.master = -1
        self.rng = random.Random(seed)  # noise and split points: reproducible with a seed
        self.split = False
        self.dropped = 0  # bytes the host did not take (its input buffer was full)
        self._write_lock = threading.Lock()
        self._plug_lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.received = bytearray()
        self.replug()

    @property
    def path(self) -> str:
        return str(self.link)

    @property
    def plugged(self) -> bool:
        return self.master >= 0

    def replug(self) -> None:
        """A new pty behind the same path (unplugging the current one first, if any)."""
        with self._plug_lock:
            if self._closed:
                return
            if self.master >= 0:
                self.unplug()
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            name = os.ttyname(slave)
            os.close(slave)  # the box opens it by path
            os.set_blocking(master, False)  # a host that stops reading must not hang the device (see write)
            tmp = self.link.with_suffix(".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(name)
            tmp.replace(self.link)
            self.master = master
            self._stop = threading.Event()  # a fresh event: a late old thread keeps seeing its own stop
            self._thread = threading.Thread(target=self._loop, args=(master, self._stop), daemon=True,
                                            name=f"pty-{self.link.name}")
            self._thread.start()

    def unplug(self) -> None:
        with self._plug_lock:
            self._stop.set()
            if self._thread and self._thread is not threading.current_thread():
                self._thread.join(2)
            with self._write_lock:
                try:
                    os.close(self.master)
                except OSError:
                    pass
                self.master = -1

    def disconnect(self, seconds: float) -> None:
        """Unplug now and plug back in after `seconds` (without blocking the caller)."""
        with self._plug_lock:
            if self._timer:
                self._timer.cancel()
            self.unplug()
            self._timer = threading.Timer(seconds, self.replug)
            self._timer.daemon = True
            self._timer.start()

    def write(self, data: bytes) -> None:
        """Sends `data` as one frame: whole, or in 2-4 pieces with pauses when `split` is on."""
        with self._write_lock:
            if self.master < 0:
                return
            pieces = [data]
            if self.split and len(data) > 1:
                cuts = sorted(self.rng.sample(range(1, len(data)), min(len(data) - 1, self.rng.randint(1, 3))))
                pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(SPLIT_PAUSE_S)
                self._send(piece)

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:  # the host's input buffer is full: a real line loses the bytes too
                self.dropped += len(view)
                return
            except OSError:  # unplugged meanwhile, or no host: nobody to receive
                return
            view = view[n:]

    def garbage(self, n: int) -> bytes:
        """Sends n bytes of line noise (any values, so also frame delimiters) as one write; returns them."""
        noise = bytes(self.rng.randrange(256) for _ in range(n))
        self.write(noise)
        return noise

    def split_frames(self, on: bool = True) -> None:
        self.split = on

    def _loop(self, master: int, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], TICK_S)
                data = os.read(master, 1024) if ready else b""
            except BlockingIOError:
                data = b""
            except OSError as exc:
                if exc.errno == errno.EIO:  # no one has the port open (yet, or any more): like a cable with no host
                    stop.wait(TICK_S)
                    continue
                return  # the master was closed under us: unplugged
            try:
                if data:
                    self.received += data
                    self.on_bytes(data)
                self.tick()
            except Exception:  # noqa: BLE001 - a bug in one frame (or in a callback) must not unplug the device
                log.exception("%s: device simulator error", self.link.name)

    def on_bytes(self, data: bytes) -> None:
        """What the device does with bytes from the host."""

    def tick(self) -> None:
        """Called every ~50 ms while a host has the port open: continuous devices send here."""

    def close(self) -> None:
        """Unplugs for good (a pending disconnect does not replug) and removes the path."""
        with self._plug_lock:
            self._closed = True
            if self._timer:
                self._timer.cancel()
            self.unplug()
            self.link.unlink(missing_ok=True)


class ScaleModel:
    """What is on a scale's platter and how the reading behaves; the protocol classes turn it into frames.

    `grams` and `stable` are plain attributes (tests set them directly); `reading()` applies drift and motion.
    """

    rng: random.Random  # the device's (PtyDevice): motion noise comes from the same seeded stream

    def _init_scale(self, grams: int, capacity_g: int) -> None:
        self.grams, self.stable, self.capacity_g = grams, True, capacity_g
        self.drift_g_per_s = 0.0
        self._drift_from = time.monotonic()
        self._drift_carry = 0.0
        self._motion_until = 0.0

    def set_grams(self, grams: int) -> None:
        """Puts `grams` on the platter (negative: under zero, over capacity: overload). Drift carries on."""
        self._advance()
        self.grams, self._drift_carry = int(grams), 0.0

    def drift(self, grams_per_s: float) -> None:
        """The reading creeps by this many grams a second (from now) until drift(0)."""
        self._advance()
        self.drift_g_per_s = float(grams_per_s)

    def unstable(self, seconds: float) -> None:
        """In motion for `seconds` (the reading wobbles), then stable again by itself."""
        self._motion_until = time.monotonic() + seconds

    def overload(self) -> int:
        """More than the capacity on the platter; returns the grams put on."""
        self.set_grams(self.capacity_g + 1000)
        return self.grams

    @property
    def in_motion(self) -> bool:
        return not self.stable or time.monotonic() < self._motion_until

    def _advance(self) -> None:
        now = time.monotonic()
        self._drift_carry += self.drift_g_per_s * (now - self._drift_from)
        self._drift_from = now
        whole = int(self._drift_carry)  # toward zero, so negative drift creeps down the same way
        if whole:
            self.grams += whole
            self._drift_carry -= whole

    def reading(self) -> tuple[int, bool]:
        """(grams shown, in motion): a moving platter shows a few grams either side of the weight."""
        self._advance()
        motion = self.in_motion
        return self.grams + (self.rng.randint(-15, 15) if motion else 0), motion


class Toledo8217Scale(ScaleModel, PtyDevice):
    """Answers `W` with `STX ww.www CR` when stable, in range and >= 0, else `STX ? status CR`: the status byte is
    0x40 | motion 0x01 | over capacity 0x02 | under zero 0x04 ('A' motion, 'B' over, 'D' under), as real scales send.
    """

    def __init__(self, link: Path, grams: int = 0, capacity_g: int = CAPACITY_G, seed: int | None = None) -> None:
        self._init_scale(grams, capacity_g)
        self.garbage_next = b""  # sent just before the next answer
        super().__init__(link, seed=seed)

    def on_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte & 0x7F == ord("W"):  # 7E1 written by an 8N1 host carries the parity bit in bit 7
                if self.garbage_next:
                    self.write(self.garbage_next)
                    self.garbage_next = b""
                self.write(self.frame())

    def frame(self) -> bytes:
        grams, motion = self.reading()
        status = (1 if motion else 0) | (2 if grams > self.capacity_g else 0) | (4 if grams < 0 else 0)
        if status:
            return b"\x02?" + bytes([0x40 | status]) + b"\r"
        return b"\x02" + f"{grams / 1000:06.3f}".encode() + b"\r"


class ContinuousScale(ScaleModel, PtyDevice):
    """Sends the A&D standard format, `ST|US,GS,+001.234kg CR LF` (18 bytes), ten times a second; over capacity
    it sends `OL,GS,+   .   kg` (sign and decimal point kept, digits blank, as the indicators do)."""

    INTERVAL_S = 0.1

    def __init__(self, link: Path, grams: int = 0, capacity_g: int = CAPACITY_G, seed: int | None = None) -> None:
        self._init_scale(grams, capacity_g)
        self._next_frame = 0.0
        super().__init__(link, seed=seed)

    def tick(self) -> None:
        now = time.monotonic()
        if now < self._next_frame:
            return
        self._next_frame = now + self.INTERVAL_S
        self.write(self.frame())

    def frame(self) -> bytes:
        grams, motion = self.reading()
        if grams > self.capacity_g:
            return b"OL,GS,+   .   kg\r\n"
        sign = "-" if grams < 0 else "+"
        return f"{'US' if motion else 'ST'},GS,{sign}{abs(grams) / 1000:07.3f}kg\r\n".encode()


class Scanner(PtyDevice):
    def scan(self, code: str, terminator: bytes = b"\r\n") -> None:
        self.write(code.encode() + terminator)


class ReceiptPrinter(PtyDevice):
    """Decodes what the box prints into `receipts` (raw bytes stay in `received`).

    Each finished receipt is appended, as readable text, to `receipts_file` if set, and passed to `on_receipt`
    (called on the device's thread). `next_receipt()` waits for one.
    """

    def __init__(self, link: Path, receipts_file: Path | str | None = None, on_receipt=None,
                 seed: int | None = None) -> None:
        self.reader = EscPosReader()
        self.receipts: list[Receipt] = []
        self.receipts_file = Path(receipts_file) if receipts_file else None
        self.on_receipt = on_receipt
        self._arrived = threading.Condition()
        super().__init__(link, seed=seed)

    def on_bytes(self, data: bytes) -> None:
        for receipt in self.reader.feed(data):
            number = len(self.receipts) + 1
            if self.receipts_file:  # filed before anyone is told: a waiter finds it in the file too
                try:
                    with self.receipts_file.open("a", encoding="utf-8") as f:  # reopened each time: tail -f friendly
                        f.write(describe(receipt, number) + "\n")
                except OSError as exc:  # a full disk must not stop the printer; the receipt still counts
                    receipt.errors.append(f"could not append to {self.receipts_file}: {exc}")
            with self._arrived:
                self.receipts.append(receipt)
                self._arrived.notify_all()
            if self.on_receipt:  # last: whoever it tells finds the receipt in `receipts` and in the file
                self.on_receipt(receipt, number)

    def next_receipt(self, timeout: float = 5.0, after: int | None = None) -> Receipt:
        """Receipt number `after` + 1 (default: the next one from now), waiting up to `timeout` seconds.

        To avoid missing a fast receipt, take `after = len(printer.receipts)` before making the box print.
        Raises TimeoutError saying how many receipts there are.
        """
        with self._arrived:
            index = len(self.receipts) if after is None else after
            if not self._arrived.wait_for(lambda: len(self.receipts) > index, timeout):
                raise TimeoutError(f"no receipt #{index + 1} within {timeout} s ({len(self.receipts)} so far)")
            return self.receipts[index]


def describe(receipt: Receipt, number: int, indent: str = "") -> str:
    """A receipt as the simulator shows and files it: a header, its text and decoding errors (each line after
    `indent`), a closing rule."""
    head = f"=== receipt {number}: {len(receipt.qr)} QR, {len(receipt.errors)} errors"
    body = receipt.text.split("\n") if receipt.text else []
    return "\n".join([head, *(indent + line for line in body), *(f"{indent}! {e}" for e in receipt.errors), "=" * 32])
