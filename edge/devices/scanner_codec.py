"""Barcode scanner input (serial or USB-CDC): codes terminated by CR, LF, CRLF or TAB; whitespace trimmed and an
AIM symbology identifier dropped, except a GS1 one (`]C1`, `]e0`, `]d2`, `]Q3`: it says the text is an AI element
string). FNC1 inside a GS1 element string arrives as the ASCII GS (0x1D) and is kept. Validation (check digits,
layouts, AIs) is protocol.barcodes' and protocol.gs1's job at the lane."""
from __future__ import annotations

from edge.devices.events import Garbage, Scan
from edge.devices.lines import LineFramer
from edge.devices.traits import SerialSettings
from protocol.gs1 import GS, GS1_SYMBOLOGIES

TERMINATORS = b"\r\n\t"
MAX_CODE_BYTES = 128  # a GS1-128 symbol holds 48 characters; a Digital Link QR code a URI of about 100


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
        if text.startswith("]") and len(text) > 3 and not text.startswith(GS1_SYMBOLOGIES):
            text = text[3:]
        if not text or not text.replace(GS, "").isprintable():
            return Garbage(raw, "empty or unprintable scan")
        return Scan(text)
