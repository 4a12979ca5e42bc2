"""Barcode scanner input (serial or USB-CDC): codes terminated by CR, LF, CRLF or TAB; whitespace trimmed and an
AIM symbology identifier dropped. Validation (check digits, layouts) is protocol.barcodes' job at the lane."""
from __future__ import annotations

from edge.devices.events import Garbage, Scan

TERMINATORS = b"\r\n\t"
MAX_CODE_BYTES = 64


class ScannerCodec:
    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list:
        events = []
        for byte in data:
            if byte in TERMINATORS:
                if self.buffer:
                    events.append(self._code(bytes(self.buffer)))
                self.buffer = bytearray()
            else:
                self.buffer.append(byte)
                if len(self.buffer) > MAX_CODE_BYTES:
                    events.append(Garbage(bytes(self.buffer), f"no terminator within {MAX_CODE_BYTES} bytes"))
                    self.buffer = bytearray()
        return events

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
