"""CPU seconds by component over a load run: what an event or an order costs each part of the system.

The scale document (docs/scale.md) sizes a chain from these figures, so they are measured, never estimated: every
process on the box is read at the start and at the end of the measured interval (psutil), classed by what it is
(the cloud process, its uvicorn workers, the Ray actor workers, Ray's own daemons, PostgreSQL, nats-server, the
store box, this load generator), and its CPU time (user + system) in between is added to its class. A process that
ends inside the interval is read at its last sample (`sample`, called as often as the suite likes); one started
inside it counts from zero. `busy_s` is the whole box's busy CPU time over the interval (from /proc/stat): what no
class explains shows as `unaccounted_s`.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable

import psutil

COMPONENTS = ("cloud", "ray_actors", "ray_system", "postgres", "nats", "edge", "load_generator", "other")
RAY_SYSTEM = ("raylet", "gcs_server", "dashboard", "log_monitor", "monitor.py", "runtime_env", "ray_client_server")


def classify(proc: psutil.Process, roles: dict[int, str]) -> str:
    """The component a process belongs to: `roles` names the suite's own processes (and their children) by pid."""
    try:
        if proc.pid in roles:
            return roles[proc.pid]
        name = proc.name()
        cmd = " ".join(proc.cmdline()[:3])
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "other"
    if name.startswith("nats-server"):
        return "nats"
    if name in ("postgres", "postmaster"):
        return "postgres"
    if cmd.startswith("ray::") or name.startswith("ray::"):
        return "ray_actors"
    if any(part in cmd or part in name for part in RAY_SYSTEM):
        return "ray_system"
    for parent in _parents(proc):  # a suite process's own children (uvicorn workers) are its class
        if parent in roles:
            return roles[parent]
    return "other"


def _parents(proc: psutil.Process) -> Iterable[int]:
    try:
        return [p.pid for p in proc.parents()]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _cpu(proc: psutil.Process) -> float | None:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _busy_s() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


class CpuMeter:
    """`start()`, any number of `sample()`, then `stop()` -> CPU seconds per component over the interval."""

    def __init__(self, roles: dict[int, str] | None = None) -> None:
        self.roles = dict(roles or {})
        self.roles.setdefault(os.getpid(), "load_generator")
        self._first: dict[tuple[int, float], float] = {}  # (pid, create time) -> cpu at start (0 when born later)
        self._last: dict[tuple[int, float], tuple[str, float]] = {}
        self._busy0 = self._wall0 = 0.0

    def start(self) -> CpuMeter:
        self._busy0, self._wall0 = _busy_s(), time.monotonic()
        for proc in psutil.process_iter():
            cpu = _cpu(proc)
            if cpu is not None:
                key = (proc.pid, proc.create_time())
                self._first[key] = cpu
                self._last[key] = (classify(proc, self.roles), cpu)
        return self

    def sample(self) -> None:
        for proc in psutil.process_iter():
            cpu = _cpu(proc)
            if cpu is None:
                continue
            key = (proc.pid, proc.create_time())
            self._first.setdefault(key, 0.0)  # born inside the interval
            known = self._last.get(key)
            self._last[key] = (known[0] if known else classify(proc, self.roles), cpu)

    def stop(self) -> dict:
        self.sample()
        by: dict[str, float] = dict.fromkeys(COMPONENTS, 0.0)
        for key, (component, cpu) in self._last.items():
            by[component] = by.get(component, 0.0) + max(cpu - self._first.get(key, 0.0), 0.0)
        busy = _busy_s() - self._busy0
        wall = time.monotonic() - self._wall0
        return {"wall_s": round(wall, 3), "busy_s": round(busy, 3), "cores": psutil.cpu_count(),
                "cpu_s": {k: round(v, 3) for k, v in by.items() if v > 0},
                "unaccounted_s": round(max(busy - sum(by.values()), 0.0), 3)}


def ms_per_unit(cpu: dict, units: int) -> dict[str, float]:
    """CPU milliseconds per unit (event, order) for each component: the scale document's unit costs."""
    if units <= 0:
        return {}
    return {k: round(v * 1000 / units, 4) for k, v in cpu["cpu_s"].items()} | {
        "total": round(sum(cpu["cpu_s"].values()) * 1000 / units, 4)}
