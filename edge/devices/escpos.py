"""ESC/POS receipts and pick tickets as bytes: text, bold, size, alignment, cut, and a QR code (GS ( k).

Text is encoded GB18030 (Chinese thermal printers' native set); the printer simulator decodes the same bytes.
"""
from __future__ import annotations

from edge.devices.traits import SerialSettings

ESC, GS = b"\x1b", b"\x1d"
INIT = ESC + b"@"
CUT = GS + b"V\x42\x00"  # feed and partial cut
ENCODING = "gb18030"
MAX_QR_BYTES = 700


class Ticket:
    def __init__(self) -> None:
        self.out = bytearray(INIT)

    def text(self, line: str = "", bold: bool = False, size: int = 1, align: str = "left") -> Ticket:
        self.out += ESC + b"a" + bytes([{"left": 0, "center": 1, "right": 2}[align]])
        self.out += ESC + b"E" + bytes([1 if bold else 0])
        self.out += GS + b"!" + bytes([((size - 1) << 4) | (size - 1)])
        self.out += line.encode(ENCODING, errors="replace") + b"\n"
        if bold or size != 1:
            self.out += ESC + b"E\x00" + GS + b"!\x00"
        return self

    def columns(self, left: str, right: str, width: int = 32) -> Ticket:
        gap = max(width - len(left) - len(right), 1)
        return self.text(left + " " * gap + right)

    def qr(self, payload: str, module_size: int = 6) -> Ticket:
        data = payload.encode("utf-8")
        if len(data) > MAX_QR_BYTES:
            raise ValueError(f"QR payload of {len(data)} bytes exceeds {MAX_QR_BYTES}")
        def fn(cn: int, fn_code: int, params: bytes) -> bytes:
            body = bytes([cn, fn_code]) + params
            return GS + b"(k" + bytes([len(body) & 0xFF, len(body) >> 8]) + body
        self.out += ESC + b"a\x01"
        self.out += fn(49, 65, b"\x32\x00")  # model 2
        self.out += fn(49, 67, bytes([module_size]))
        self.out += fn(49, 69, b"\x31")  # error correction M
        self.out += fn(49, 80, b"\x30" + data)  # store the data
        self.out += fn(49, 81, b"\x30")  # print it
        self.out += b"\n" + ESC + b"a\x00"
        return self

    def cut(self) -> bytes:
        self.out += b"\n\n\n" + CUT
        return bytes(self.out)


class PrinterReplies:
    """What a receipt printer sends back (status bytes, XON/XOFF): not used by the box, so dropped - the codec of a
    port that is only written to. It keeps nothing, so it is bounded."""
    SERIAL = SerialSettings(baudrate=9600, bytesize=8, parity="N")

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list:
        return []
