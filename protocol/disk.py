"""A store box's data disk, as both sides judge it: the low-water mark and how free bytes are said to people.

The edge raises its disk device to "degraded" under the mark (edge/disk.py, per box: `disk_low_water_bytes` in its
config); the cloud, which sees only the heartbeat's `disk_free_bytes`, raises its console alert and its Prometheus
rule (ops/prometheus/alerts.yml) under the same default mark, so the two agree for a box on the defaults.
"""
from __future__ import annotations

DISK_LOW_WATER_BYTES = 200 * 1000 * 1000  # 200 MB: days of sales; under it the console raises an alert
UNKNOWN = -1  # a heartbeat that does not say (an older box, or statvfs failed)
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_bytes(n: int) -> str:
    """Decimal units as disks are sold and `df -H` shows them: 512 B, 1.5 MB, 37.2 GB; '-' when unknown."""
    if n < 0:
        return "-"
    value, unit = float(n), 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value, unit = value / 1000, unit + 1
    return f"{n} B" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def disk_low(free_bytes: int, low_water_bytes: int = DISK_LOW_WATER_BYTES) -> bool:
    """Under the low-water mark (an unknown free space is not called low: it is not known)."""
    return 0 <= free_bytes < low_water_bytes
