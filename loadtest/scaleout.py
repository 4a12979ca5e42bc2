"""`freshmesh load scaleout`: do the bridge and the actors scale from one instance to two?

A 2-core box cannot show two instances going twice as fast when each could take a whole core: the instances, the
shared servers (PostgreSQL, NATS, Ray's daemons) and the load generator would share the same two cores. So each
instance here is a small node: its processes are put in a CPU cgroup capped at `--instance-cpu` of a core (cgroup
v1's cpu controller, or v2's cpu.max; needs root). The shared servers keep the rest of the box, and the question
becomes the one a cluster asks: does a second node of the same size add a node's worth of throughput? Without a
writable cpu cgroup the instances run uncapped and the report says `capped: false` (then the figures are the
box's ceiling, not scaling).

- actors: reserve commands (batches of 2,000, durable group commits) on 1, then 2, StockPool shards, each shard's
  actor process in its own cgroup; reservations/s over `--seconds`.
- bridge: a backlog of 4 stores' sales (one store per event partition, so 2 instances take 2 shards each), made
  offline by their edge boxes and published into JetStream while no bridge runs; then 1, then 2, cloud instances
  (each capped, on the shared NATS, PostgreSQL and Ray) apply it. events/s is measured over the samples where the
  shard leases are spread over every instance (after the start and the rebalancing), from the applied rows in
  PostgreSQL (`edge_events`). Each instance count gets its own stack and backlog.
scaling = per_s(2) / (2 x per_s(1)): 1.0 is linear.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from loadtest.cost import CpuMeter, ms_per_unit
from loadtest.report import Progress, stop_process, wait_http

STORES = ("S001", "S002", "S003", "S004")  # event partitions 1, 0, 3, 2 (protocol/subjects.py): one store each
CGROUP_ROOTS = (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup"))
PERIOD_US = 100_000


class CpuCap:
    """A CPU cgroup whose processes share at most `cores` of a core (a quota per 100 ms period). `make` answers
    None where no cpu controller is writable (not root, or none mounted)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def make(cls, cores: float) -> CpuCap | None:
        quota = max(1_000, int(cores * PERIOD_US))
        for root in CGROUP_ROOTS:
            v1 = (root / "cpu.cfs_quota_us").exists()
            if not (v1 or (root / "cgroup.subtree_control").exists()):
                continue
            path = root / f"freshmesh-load-{uuid.uuid4().hex[:8]}"
            try:
                path.mkdir()
                if v1:
                    (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                    (path / "cpu.cfs_quota_us").write_text(str(quota))
                else:
                    (path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
                return cls(path)
            except OSError:
                if path.exists():
                    path.rmdir()
        return None

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def close(self) -> None:
        """Moves what is left back to the root group, then removes the group."""
        procs = self.path / "cgroup.procs"
        for pid in procs.read_text().split():
            try:
                (self.path.parent / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # gone meanwhile
        try:
            self.path.rmdir()
        except OSError:
            pass


def _caps(n: int, cores: float) -> list[CpuCap | None]:
    return [CpuCap.make(cores) for _ in range(n)]


def _close(caps: list[CpuCap | None]) -> None:
    for cap in caps:
        if cap is not None:
            cap.close()


# ---- actors -----------------------------------------------------------------------------------------------------
async def _actors_run(shards: int, seconds: float, cores: float, database_url: str) -> dict:
    from actors.stock_pool import Grant, Reserve
    from cloud.runtime.calls import ActorCalls
    from cloud.runtime.hosting import ensure_ray
    from cloud.runtime.shard_map import ShardConfig
    from loadtest.actors import BATCH, pump

    ensure_ray()
    config = ShardConfig(stock_pool=shards, prefix=f"scale{uuid.uuid4().hex[:6]}-")
    client = ActorCalls(database_url, expire_every_ms=0)
    pools = config.all_stock_pools()
    skus: dict[str, str] = {}
    for i in range(1000):
        skus.setdefault(config.stock_pool_name(f"SKU{i}"), f"SKU{i}")
    caps = _caps(len(pools), cores)
    try:
        for name, cap in zip(pools, caps, strict=True):
            (granted,) = await client.call(name, [Grant(id="g", store="S001", sku=skus[name], qty=10**12)])
            if granted.status != "ok":
                raise RuntimeError(f"{name}: the escrow grant was refused: {granted}")
            if cap is not None:
                cap.add((await client.info(name))["pid"])

        def reserve_batch(name, k, n):
            return [Reserve(id=f"r{k}-{n}-{i}", reservation_id=f"R{k}-{n}-{i}", order_id=f"O{k}-{n}-{i}",
                            store="S001", sku=skus[name], qty=1) for i in range(BATCH)]

        measured = await pump(client, pools, reserve_batch, seconds, f"reservations on {shards} shard(s)")
        return {**measured, "capped": all(c is not None for c in caps)}
    finally:
        _close(caps)


def _actors(seconds: float, cores: float) -> dict:
    from cloud.embedded import EmbeddedStack
    from cloud.runtime.hosting import stop_ray
    with EmbeddedStack(nats=False) as stack:
        runs = {n: asyncio.run(_actors_run(n, seconds, cores, stack.database_url)) for n in (1, 2)}
    stop_ray()
    return _summary(runs, "reservations_per_s")


# ---- bridge -----------------------------------------------------------------------------------------------------
def _cloud(env: dict, port: int, cap: CpuCap | None) -> subprocess.Popen:
    """A cloud instance (bridge, sweeper, one idle API worker), its whole process tree in `cap`: the child joins
    the group before it execs, so everything it starts is in the group too."""
    preexec = (lambda: cap.add(os.getpid())) if cap is not None else None  # noqa: E731
    return subprocess.Popen([sys.executable, "-m", "cloud", "--http-port", str(port), "--workers", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec)  # noqa: PLW1509


async def _publish(stack, workdir: Path, world: str) -> int:
    """The boxes come online and relay their outboxes into JetStream; returns once the stream holds them all
    (no bridge runs yet, so nothing is acked and the outboxes keep their rows: the boxes are stopped)."""
    import nats

    from edge.box import EdgeBox
    from protocol import subjects

    nc = await nats.connect(stack.nats_url)
    js = nc.jetstream()
    before = (await js.stream_info(subjects.EVENTS_STREAM)).state.messages
    boxes = []
    try:
        total = 0
        for store in STORES:
            box = await EdgeBox({"store_id": store, "data_dir": str(workdir / store), "world": world,
                                 "nats_url": stack.nats_address,
                                 "nats_password": stack.store_credentials(store)[1]}).start()
            boxes.append(box)
            total += await box.store_db.outbox_depth()
        progress = Progress("publish")
        deadline = time.monotonic() + 600
        while (held := (await js.stream_info(subjects.EVENTS_STREAM)).state.messages - before) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {held:,} of {total:,} events reached JetStream in 600 s")
            progress.update(f"{held:,} of {total:,} events in JetStream")
            await asyncio.sleep(0.2)
        progress.done()
        return total
    finally:
        for box in boxes:
            await box.stop()
        await nc.close()


async def _applied(database_url: str, instances: int, total: int, started: float, procs: list
                   ) -> tuple[list[dict], dict]:
    """Samples every 0.2 s until every event is applied: applied rows and how many instances hold shards; and the
    CPU by component from the first applied event to the last (the instances' start is not the events' cost)."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    samples: list[dict] = []
    meter: CpuMeter | None = None
    metered_from = 0
    progress = Progress(f"apply with {instances} instance(s)")
    try:
        while time.monotonic() - started < 900:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a cloud instance exited during the run")
            applied = await conn.fetchval("select count(*) from edge_events")
            holders = await conn.fetchval("select count(distinct owner) from bridge_shard_leases where owner is not null")
            samples.append({"t": time.monotonic(), "applied": applied, "holders": holders})
            if meter is None and applied > 0:
                meter, metered_from = CpuMeter({p.pid: "cloud" for p in procs}).start(), applied
            elif meter is not None and len(samples) % 5 == 0:
                meter.sample()  # a process ending inside the interval is counted to its last sample
            progress.update(f"{applied:,} of {total:,} applied, shards held by {holders}")
            if applied >= total:
                break
            await asyncio.sleep(0.2)
        # each taking of a shard raises its generation: more than one per shard and instance is churn
        takings = await conn.fetchval("select coalesce(sum(generation), 0)::bigint from bridge_shard_leases")
    finally:
        progress.done()
        await conn.close()
    cpu = meter.stop() if meter is not None else {}
    per_event = ms_per_unit(cpu, samples[-1]["applied"] - metered_from) if cpu else {}
    return samples, {"shard_takings": takings, "cpu": cpu, "cpu_ms_per_event": per_event}


def _spread_rate(samples: list[dict], instances: int, total: int) -> dict:
    """events/s over the samples where every instance holds shards, between 5% and 95% of the backlog (the ends:
    starting and the last, thinning batches)."""
    window = [s for s in samples if s["holders"] == instances and 0.05 * total <= s["applied"] <= 0.95 * total]
    if len(window) < 2 or window[-1]["t"] <= window[0]["t"]:
        return {"per_s": None, "window_s": 0.0, "window_events": 0}
    events = window[-1]["applied"] - window[0]["applied"]
    seconds = window[-1]["t"] - window[0]["t"]
    return {"per_s": round(events / seconds), "window_s": round(seconds, 2), "window_events": events}


def _bridge_run(instances: int, sales: int, cores: float, seed: int) -> dict:
    import shutil

    from cloud.embedded import EmbeddedStack
    from cloud.embedded.process import free_port
    from cloud.runtime.hosting import ensure_ray
    from loadtest.catchup import make_backlog, world_path

    world = world_path()
    workdir = Path(tempfile.mkdtemp(prefix="freshmesh-scaleout-"))
    procs: list[subprocess.Popen] = []
    caps: list[CpuCap | None] = []
    try:
        for k, store in enumerate(STORES):
            asyncio.run(make_backlog(workdir / store, sales, seed + k, store=store))
        with EmbeddedStack(store_ids=list(STORES)) as stack:
            ray_address = ensure_ray()
            env = {**os.environ, "NATS_URL": stack.nats_url, "DATABASE_URL": stack.database_url,
                   "RAY_ADDRESS": ray_address, "FRESHMESH_SECRET_KEY": secrets.token_urlsafe(48),
                   "FRESHMESH_ADMIN_PASSWORD": secrets.token_urlsafe(24),
                   "FRESHMESH_STORE_CREDENTIALS": str(stack.credentials.path)}
            port = free_port()  # a first instance makes the streams and the tables, then goes: no bridge runs
            setup = _cloud(env, port, None)
            try:
                wait_http(f"http://127.0.0.1:{port}/health", 180, setup)
            finally:
                stop_process(setup)
            total = asyncio.run(_publish(stack, workdir, world))
            caps = _caps(instances, cores)
            started = time.monotonic()
            for cap in caps:
                procs.append(_cloud(env, free_port(), cap))
            samples, cost = asyncio.run(_applied(stack.database_url, instances, total, started, procs))
            for p in procs:
                stop_process(p)
    finally:
        for p in procs:
            stop_process(p)
        _close(caps)
        shutil.rmtree(workdir, ignore_errors=True)
    done = samples[-1]
    first = next((s for s in samples if s["applied"] > 0), done)
    return {"instances": instances, "backlog_events": total, "drained": done["applied"] >= total,
            "seconds_start_to_first_applied": round(first["t"] - started, 2),
            "seconds_to_all_applied": round(done["t"] - started, 2),
            **_spread_rate(samples, instances, total), "capped": all(c is not None for c in caps), **cost}


def _bridge(sales: int, cores: float, seed: int) -> dict:
    from cloud.runtime.hosting import stop_ray
    runs = {}
    for n in (1, 2):
        runs[n] = _bridge_run(n, sales, cores, seed)
        stop_ray()  # each run's Ray goes with its stack
    return _summary(runs, "events_per_s")


def _summary(runs: dict[int, dict], unit: str) -> dict:
    one, two = runs[1]["per_s"], runs[2]["per_s"]
    return {f"{unit}_1": one, f"{unit}_2": two, "scaling": round(two / (2 * one), 3) if one and two else None,
            "runs": {str(n): r for n, r in runs.items()}}


def run_from_args(args) -> dict:
    cores = args.instance_cpu
    report = {"suite": "scaleout", "instance_cpu": cores, "cores": os.cpu_count()}
    if args.part in ("both", "actors"):
        report["actors"] = _actors(args.seconds, cores)
    if args.part in ("both", "bridge"):
        report["bridge"] = _bridge(args.sales, cores, args.seed)
    report["capped"] = all(r["capped"] for part in ("actors", "bridge") if part in report
                           for r in report[part]["runs"].values())
    report["note"] = ("each instance capped at instance_cpu of a core (a CPU cgroup) on the shared servers; scaling "
                      "= per_s(2) / (2 x per_s(1)), 1.0 linear" if report["capped"] else
                      "NOT capped (no writable cpu cgroup): instances shared the whole box; this is not a scaling figure")
    return report
