"""`GET /metrics`: one Prometheus exposition for the whole cloud, whichever API worker answers the scrape.

Two kinds of numbers, each from the one place that knows it:
- what the API workers count themselves (requests, latencies, flash outcomes): prometheus_client's multiprocess
  mode. `freshmesh cloud` makes a fresh directory per run (`prepare_dir`: emptied at start, so a restarted cloud
  does not add up a dead run's files) and gives it to the workers as PROMETHEUS_MULTIPROC_DIR; every worker's
  counters live in its own memory-mapped file there and a scrape sums all the files, so two scrapes answered by
  different workers give the same totals, and a counter never goes down when a worker dies (its file stays; its
  live gauges are dropped by `mark_process_dead` when it exits). Without the variable (one process, tests'
  in-process cloud) the process's own registry is exported;
- the chain's state (`cloud.http.domain_metrics`): the console snapshot (registry, Ray actor table, actors' stats,
  flash gates, audit), the JetStream consumers' info and the dead-letter counts, read at scrape time with short
  timeouts; a source that does not answer is `freshmesh_scrape_source_up{source} 0`, never a slow scrape.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from cloud.http.domain_metrics import ScrapeInputs, families
from cloud.logs import version
from cloud.messaging import bridge_shards
from protocol import subjects

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SOURCE_TIMEOUT_S = 3.0
CONSUMERS_AT_ONCE = 32  # JetStream info requests in flight per scrape (500 stores: a few rounds)
DEAD_LETTERS_SQL = """select store_id, left(reason, 80) as reason, count(*) as count from dead_letters
                      group by 1, 2"""
log = logging.getLogger("freshmesh.metrics")


def prepare_dir(path: Path) -> Path:
    """An empty directory for this run's worker metric files (a previous run's are removed, never summed in)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o700)
    return path


def worker_exited(pid: int | None = None) -> None:
    """A worker leaving: its live gauges are dropped (its counters stay, so totals never go down)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid or os.getpid())


class _Domain:
    def __init__(self, inputs: ScrapeInputs) -> None:
        self.inputs = inputs

    def collect(self):
        return families(self.inputs)


async def _snapshot(services) -> dict:
    return await services.console().snapshot()


async def _consumers(cloud) -> list[dict]:
    js = cloud.nats.jetstream()
    # the shards' consumers change name with each holding of their lease: found by listing, labelled by shard
    current = await bridge_shards.shard_consumer_infos(js)
    names = [(subjects.EVENTS_STREAM, name) for name in bridge_shards.consumer_names()] + [
        (subjects.CLOUD_MESSAGES_STREAM, subjects.cloud_messages_consumer(s)) for s in sorted(cloud.world.stores)]
    gate = asyncio.Semaphore(CONSUMERS_AT_ONCE)

    async def one(stream: str, consumer: str) -> dict | None:
        async with gate:
            try:
                info = current[consumer] if stream == subjects.EVENTS_STREAM else await js.consumer_info(stream, consumer)
            except Exception:  # noqa: BLE001 - e.g. a store whose consumer the bridge has not made yet
                return None
        return {"stream": stream, "consumer": consumer, "pending": info.num_pending or 0,
                "ack_pending": info.num_ack_pending or 0, "redelivered": info.num_redelivered or 0,
                "acked_stream_seq": (info.ack_floor.stream_seq or 0) if info.ack_floor else 0}

    found = await asyncio.gather(*(one(s, c) for s, c in names))
    if all(c is None for c in found[:bridge_shards.BRIDGE_SHARDS]):
        raise RuntimeError("no consumer of the bridge's shards found")
    return [c for c in found if c is not None]


async def _dead_letters(cloud) -> list[dict]:
    return [dict(r) for r in await cloud.db.fetch(DEAD_LETTERS_SQL)]


async def gather(services) -> ScrapeInputs:
    inputs = ScrapeInputs(version=version())
    cloud = services.cloud

    async def read(source: str, coro):
        try:
            return await asyncio.wait_for(coro, SOURCE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - said in the exposition (source up 0), not raised
            inputs.errors[source] = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("metrics: %s not read: %s", source, inputs.errors[source])
            return None

    nats_ok = cloud.nats is not None and cloud.nats.is_connected
    inputs.snapshot, inputs.consumers, inputs.dead_letters = await asyncio.gather(
        read("console", _snapshot(services)),
        read("jetstream", _consumers(cloud)) if nats_ok else asyncio.sleep(0, None),
        read("database", _dead_letters(cloud)))
    return inputs


def exposition(inputs: ScrapeInputs) -> bytes:
    """The workers' own metrics (summed over every worker in multiprocess mode) and the chain's state."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
        own = generate_latest(registry)
    else:
        own = generate_latest(REGISTRY)
    domain = CollectorRegistry()
    domain.register(_Domain(inputs))
    return own + generate_latest(domain)


# The classic text format, which generate_latest writes and every Prometheus reads (prometheus_client's
# CONTENT_TYPE_LATEST now names 1.0.0, whose escaping rules a scraper must then apply)
MEDIA_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def run_dir(keep_dir: Path | None) -> Path:
    """This cloud run's directory for the workers' metric files: beside the embedded state when there is one,
    else a per-process one under the system's temp dir (both emptied at start by `prepare_dir`)."""
    import tempfile
    base = keep_dir if keep_dir is not None else Path(tempfile.gettempdir()) / f"freshmesh-metrics-{os.getpid()}"
    return base / "prometheus" if keep_dir is not None else base


def remove_dir(path: str) -> None:
    """At a clean stop: the run's metric files (counters restart from zero with the next run, as Prometheus expects
    of a restarted target)."""
    shutil.rmtree(path, ignore_errors=True)
