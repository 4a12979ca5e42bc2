"""Virtual serial devices on pseudo-terminals: the edge box opens them with pyserial like real ports.

Each device owns a pty pair and exposes a stable path (a symlink to the current slave), so `unplug()` (close the
master: the box's reads fail) and `replug()` (a new pty behind the same path) behave like a USB cable pulled out
and put back.
"""
from __future__ import annotations

import errno
import os
import select
import threading
import tty
from pathlib import Path


class PtyDevice:
    def __init__(self, link: Path) -> None:
        self.link = Path(link)
        self.master = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.received = bytearray()
        self.replug()

    @property
    def path(self) -> str:
        return str(self.link)

    def replug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        name = os.ttyname(slave)
        os.close(slave)  # the box opens it by path
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(name)
        tmp.replace(self.link)
        self.master = master
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(master,), daemon=True)
        self._thread.start()

    def unplug(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        try:
            os.close(self.master)
        except OSError:
            pass
        self.master = -1

    def write(self, data: bytes) -> None:
        if self.master >= 0:
            os.write(self.master, data)

    def _loop(self, master: int) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if ready:
                    data = os.read(master, 1024)
                    if data:
                        self.received += data
                        self.on_bytes(data)
            except OSError as exc:
                if exc.errno == errno.EIO:  # no one has the port open (yet, or any more): like a cable with no host
                    self._stop.wait(0.05)
                    continue
                return
            self.tick()

    def on_bytes(self, data: bytes) -> None:
        """What the device does with bytes from the host."""

    def tick(self) -> None:
        """Called every ~50 ms: continuous devices send here."""

    def close(self) -> None:
        self.unplug()
        self.link.unlink(missing_ok=True)


class Toledo8217Scale(PtyDevice):
    """Answers `W` with `STX ww.www CR` when stable, else `STX ? status CR` (motion 'A', over 'B', under 'D')."""

    def __init__(self, link: Path, grams: int = 0) -> None:
        self.grams, self.stable, self.garbage_next = grams, True, b""
        super().__init__(link)

    def on_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte & 0x7F == ord("W"):
                self.write(self.garbage_next + self.frame())
                self.garbage_next = b""

    def frame(self) -> bytes:
        if not self.stable:
            return b"\x02?A\r"
        if self.grams < 0:
            return b"\x02?D\r"
        if self.grams > 15_000:
            return b"\x02?B\r"
        return b"\x02" + f"{self.grams / 1000:06.3f}".encode() + b"\r"


class ContinuousScale(PtyDevice):
    """Sends `ST|US,GS,+0001.234kg CR LF` ten times a second."""

    def __init__(self, link: Path, grams: int = 0) -> None:
        self.grams, self.stable, self._n = grams, True, 0
        super().__init__(link)

    def tick(self) -> None:
        self._n += 1
        if self._n % 2:
            return
        head = "OL" if self.grams > 15_000 else ("ST" if self.stable else "US")
        sign = "-" if self.grams < 0 else "+"
        self.write(f"{head},GS,{sign}{abs(self.grams) / 1000:09.3f}kg\r\n".encode())


class Scanner(PtyDevice):
    def scan(self, code: str, terminator: bytes = b"\r\n") -> None:
        self.write(code.encode() + terminator)


class ReceiptPrinter(PtyDevice):
    """Keeps what the box printed (raw ESC/POS bytes in `received`)."""
