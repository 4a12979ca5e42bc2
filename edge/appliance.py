"""What the store box says about itself as an appliance: disk, software version, and loud warnings.

Guarantees:
- `/health` carries `disk` (free bytes of the data dir's filesystem, the low-water mark, a state), `version` (the
  installed freshmesh package's) and `warnings` (plain sentences: "no catalogue ...", "never connected to the
  cloud ..."), so whoever looks at a box sees at once why it cannot sell or never reaches the cloud.
- Heartbeats carry the same disk figure and version (`heartbeat_extras`), and the disk as one more device, so the
  console's existing device alert shows a store whose disk is under the low-water mark ("degraded") or full
  ("down") without a console change.
"""
from __future__ import annotations

import functools
from importlib import metadata

from protocol.messages import DeviceHealth

DISK_DEVICE = "disk"


@functools.cache  # read once: an upgrade restarts the box, and reading the metadata was 15% of a box's loop
def version() -> str:
    """The installed freshmesh package's version ("0+unknown" when run from a tree that is not installed)."""
    try:
        return metadata.version("freshmesh")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def warnings(box) -> list[str]:
    out = []
    if box.actor is None or box.actor.catalogue is None:
        out.append("no catalogue: none received from the cloud and no world file; every scan is refused until the "
                   "cloud sends one")
    if box.sync is None:
        out.append("never connected to the cloud: no nats_url configured; the box sells offline only")
    elif box.sync.nc is None:
        out.append(f"never connected to the cloud since start: cannot reach {box.sync.nats_url} yet")
    disk = box.disk.state()
    if disk.state != "ok":
        out.append(f"disk {disk.state}: {disk.detail}")
    if jumped := box.clock_watch.warning(box.clock.monotonic_ms()):
        out.append(jumped)
    return out


async def health(box) -> dict:
    return {"disk": box.disk.health(), "version": version(), "warnings": warnings(box)}


def heartbeat_extras(box) -> dict:
    """The heartbeat's appliance fields: the disk as a device, its free bytes, and the version."""
    disk = box.disk.state()
    return {"disk_free_bytes": disk.free_bytes, "software_version": version(),
            "disk_device": DeviceHealth(device=DISK_DEVICE, state=disk.state, detail=disk.detail[:200])}
