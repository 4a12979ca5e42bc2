"""What the device codecs report. Plain frozen records: the StoreActor decides what they mean for a sale."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Weight:
    grams: int
    stable: bool
    net: bool = False  # a tare is set


@dataclass(frozen=True)
class ScaleStatus:
    """A scale saying why it gives no weight (8217 status byte, or an overload frame)."""
    motion: bool = False
    over_capacity: bool = False
    under_zero: bool = False
    outside_zero_range: bool = False
    center_of_zero: bool = False
    net: bool = False
    unchanged: bool = False  # status with no flag: "same as the last weight" on some 8217 scales


@dataclass(frozen=True)
class Scan:
    code: str


@dataclass(frozen=True)
class Garbage:
    data: bytes
    reason: str
