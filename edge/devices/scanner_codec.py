"""Barcode scanner input (serial or USB-CDC): codes terminated by CR, LF, CRLF or TAB; whitespace trimmed and an
AIM symbology identifier dropped. Validation (check digits, layouts) is protocol.barcodes' job at the lane."""
from __future__ import annotations

from edge.devices.events import Garbage, Scan
from edge.devices.lines import LineFramer
from edge.devices.traits import SerialSettings

TERMINATORS = b"\r\n\t"
MAX_CODE_BYTES = 64


class ScannerCodec:
    SERIAL = SerialSettings(baudrate=9600, bytesize=8, parity="N")

    def __init__(self) -> None:
        self.framer = LineFramer(TERMINATORS, MAX_CODE_BYTES)

    @property
    def buffer(self) -> bytearray:
        return self.framer.buffer

    def feed(self, data: bytes) -> list:
        return [x if isinstance(x, Garbage) else self._code(x) for x in self.framer.feed(data)]

    @staticmethod
    def _code(raw: bytes):
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return Garbage(raw, "non-ASCII bytes in a scan")
        if text.startswith("]") and len(text) > 3:
            text = text[3:]
        if not text or not text.isprintable():
            return Garbage(raw, "empty or unprintable scan")
        return Scan(text)
