"""Splitting a byte stream into terminated lines, bounded: the shared framing of line-based devices."""
from __future__ import annotations

from edge.devices.events import Garbage


class LineFramer:
    """`feed(bytes)` -> complete lines (without terminators) and Garbage for runs longer than `max_len`."""

    def __init__(self, terminators: bytes, max_len: int) -> None:
        self.terminators, self.max_len = terminators, max_len
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes | Garbage]:
        out: list[bytes | Garbage] = []
        for byte in data:
            if byte in self.terminators:
                if self.buffer:
                    out.append(bytes(self.buffer))
                self.buffer = bytearray()
            else:
                self.buffer.append(byte)
                if len(self.buffer) > self.max_len:
                    out.append(Garbage(bytes(self.buffer), f"no terminator within {self.max_len} bytes"))
                    self.buffer = bytearray()
        return out
