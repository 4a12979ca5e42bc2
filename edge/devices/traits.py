"""What a device protocol needs from its port, as data on its codec class (never branches on protocol names).

Every codec class carries `SERIAL` (how to open the port). Scale codecs also carry `POLL` (the bytes that ask
the scale for one reading; None for a scale that streams readings by itself) and `FRESH_MS` (how long a streamed
reading still counts as the current one). A box config may override the serial settings per device (a scale set
to 4800 baud in its menu); the codec's are the defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

Parity = Literal["N", "E", "O", "M", "S"]


@dataclass(frozen=True, slots=True)
class SerialSettings:
    baudrate: int = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Parity = "N"
    stopbits: Literal[1, 2] = 1

    def overridden(self, config: dict) -> SerialSettings:
        """These settings with whatever a device's config sets (`baudrate`, `bytesize`, `parity`, `stopbits`)."""
        return replace(self, **{f.name: config[f.name] for f in fields(self) if f.name in config})

    def __str__(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"
