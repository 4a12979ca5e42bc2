"""Scale protocols as sans-I/O codecs: `feed(bytes) -> [events]`, bounded buffers, resync after garbage.

Each protocol is one `ScaleCodec` subclass that carries its traits as data (edge.devices.traits): its `NAME` in a
box config, the `SERIAL` settings of its port, `POLL` (what to send for a reading, or None when the scale streams)
and `FRESH_MS`. Defining the class registers it in `CODECS`: adding a scale protocol is adding one class.

- Toledo 8217 (polled): the host sends `W`; the scale answers `STX weight [N] CR` (only when stable, >= 0 and
  within capacity) or `STX ? status CR`. Ports are 7E1; a port opened 8N1 shows the parity bit, so bit 7 is
  masked off. Status byte: mask 0x3F; bit0 motion, bit1 over capacity, bit2 under zero, bit3 outside the zero
  capture range, bit4 centre of zero, bit5 net; no flag = "unchanged, reuse the last weight".
- Continuous output (A&D / CAS "standard format"): `ST|US|OL,GS|NT,+0001.234kg CR LF` lines, many per second;
  ST is stable, US unstable (motion), OL overload.
Weights become integer grams (Decimal arithmetic: no float rounding).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from edge.devices.events import Garbage, ScaleStatus, Weight
from edge.devices.lines import LineFramer
from edge.devices.traits import SerialSettings

STX, CR, LF = 0x02, 0x0D, 0x0A
MAX_FRAME_BYTES = 64  # no legitimate frame is longer; a longer run is garbage and is dropped

WEIGHT_BODY = re.compile(rb"^\s*([0-9]+\.?[0-9]*)\s*(N?)")
CONTINUOUS = re.compile(rb"^(ST|US|OL|QT|LO),(GS|NT|TR|G |N |T |PT),([+-])([ 0-9.]{1,10})\s*(kg|g|lb|t)?\s*$")
BALANCE = re.compile(rb"^(ST|US|OL|QT),([+-])([ 0-9.]{1,10})\s*(kg|g)?\s*$")  # A&D balances: no gross/net field
TO_GRAMS = {b"kg": Decimal(1000), b"g": Decimal(1), b"t": Decimal(1_000_000), None: Decimal(1000)}


def _grams(text: bytes, unit: bytes | None = b"kg") -> int:
    try:
        value = Decimal(text.decode("ascii").strip())
    except (InvalidOperation, UnicodeDecodeError):
        raise ValueError(f"not a number: {text!r}") from None
    return int((value * TO_GRAMS[unit]).to_integral_value())


class ScaleCodec:
    """A scale protocol: `feed(bytes) -> [Weight | ScaleStatus | Garbage]`, with its traits as class data."""
    NAME: ClassVar[str] = ""
    SERIAL: ClassVar[SerialSettings] = SerialSettings()
    POLL: ClassVar[bytes | None] = None  # bytes that ask for one reading; None: the scale streams readings
    FRESH_MS: ClassVar[int] = 0  # a streamed reading counts as the current one this long

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.NAME:
            if cls.NAME in CODECS:
                raise TypeError(f"two scale codecs are named {cls.NAME!r}")
            CODECS[cls.NAME] = cls

    def feed(self, data: bytes) -> list:
        raise NotImplementedError


CODECS: dict[str, type[ScaleCodec]] = {}  # by NAME, filled as the classes are defined
DEFAULT_SCALE = "toledo8217"


class Toledo8217Codec(ScaleCodec):
    NAME = "toledo8217"
    SERIAL = SerialSettings(baudrate=9600, bytesize=7, parity="E")  # 7E1 (DEVICES.md 1.1)
    POLL = b"W"

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list:
        events = []
        for byte in data:
            byte &= 0x7F  # 7E1 read as 8N1 carries the parity bit in bit 7
            if byte == STX:
                if self.buffer:
                    events.append(Garbage(bytes(self.buffer), "frame cut short by a new STX"))
                self.buffer = bytearray([STX])
            elif not self.buffer:
                events.append(Garbage(bytes([byte]), "byte outside a frame"))
            elif byte == CR:
                events.append(self._frame(bytes(self.buffer[1:])))
                self.buffer = bytearray()
            else:
                self.buffer.append(byte)
                if len(self.buffer) > MAX_FRAME_BYTES:
                    events.append(Garbage(bytes(self.buffer), f"frame longer than {MAX_FRAME_BYTES} bytes"))
                    self.buffer = bytearray()
        return _merge_garbage(events)

    @staticmethod
    def _frame(body: bytes):
        if body.startswith(b"?") and len(body) == 2:
            s = body[1] & 0x3F
            return ScaleStatus(motion=bool(s & 1), over_capacity=bool(s & 2), under_zero=bool(s & 4),
                               outside_zero_range=bool(s & 8), center_of_zero=bool(s & 16), net=bool(s & 32),
                               unchanged=s == 0)
        m = WEIGHT_BODY.match(body)
        if not m:
            return Garbage(body, "not a weight or status frame")
        try:
            return Weight(grams=_grams(m.group(1)), stable=True, net=m.group(2) == b"N")
        except ValueError as exc:
            return Garbage(body, str(exc))


class ContinuousCodec(ScaleCodec):
    NAME = "continuous"
    SERIAL = SerialSettings(baudrate=9600, bytesize=8, parity="N")
    FRESH_MS = 700  # about 7 frames at the usual 10 per second: older than this, the scale stopped talking

    def __init__(self) -> None:
        self.framer = LineFramer(bytes([CR, LF]), MAX_FRAME_BYTES)

    @property
    def buffer(self) -> bytearray:
        return self.framer.buffer

    def feed(self, data: bytes) -> list:
        return _merge_garbage([x if isinstance(x, Garbage) else self._line(x) for x in self.framer.feed(data)])

    @staticmethod
    def _line(line: bytes):
        m = CONTINUOUS.match(line)
        if m:
            header, mode, sign, digits, unit = m.groups()
        elif (b := BALANCE.match(line)):
            (header, sign, digits, unit), mode = b.groups(), b"GS"
        else:
            return Garbage(line, "not a continuous-output frame")
        net = mode in (b"NT", b"N ")
        if header in (b"OL", b"LO") or not digits.strip(b" .") or unit == b"lb":
            if unit == b"lb":
                return Garbage(line, "pounds are not supported: set the scale to kg")
            return ScaleStatus(over_capacity=sign == b"+", under_zero=sign == b"-", net=net)
        try:
            grams = _grams(digits, unit)
        except ValueError as exc:
            return Garbage(line, str(exc))
        if sign == b"-":
            return ScaleStatus(under_zero=True, motion=header == b"US", net=net)
        return Weight(grams=grams, stable=header in (b"ST", b"QT"), net=net)


def _merge_garbage(events: list) -> list:
    """Consecutive garbage is reported once, so a burst of noise is one event."""
    merged: list = []
    for e in events:
        if isinstance(e, Garbage) and merged and isinstance(merged[-1], Garbage):
            merged[-1] = Garbage(merged[-1].data + e.data, merged[-1].reason)
        else:
            merged.append(e)
    return merged

