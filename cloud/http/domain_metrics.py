"""The chain's state as Prometheus metrics: pure, from what the cloud itself knows (no per-process guesses).

`families()` turns one console snapshot (`cloud.console.snapshot.build_snapshot`: the store registry's view from
heartbeats, Ray's actor table and each actor's own stats, the flash gates' status, the invariant audit), the
JetStream consumers' info and the dead-letter counts (PostgreSQL) into metric families. No I/O, no clock: the
shell (`cloud.http.metrics`) gathers, this names and shapes.

Guarantees:
- every metric here is the same in every API worker at the same moment (it comes from the shared authorities:
  registry, Ray, JetStream, PostgreSQL), so a scrape of any worker tells the same story;
- the alert rules (ops/prometheus/alerts.yml) are the console's alerts (`snapshot.alert_list`) on these metrics,
  with the same thresholds: each condition the console turns red has a metric that says so;
- an offline store's last-known values (lag, outbox, devices) are not exported as if current: lag and device
  state only while it is online, its outbox depth is labelled by how old it is (`freshmesh_store_heartbeat_age_seconds`);
- a source that could not be read is said (`freshmesh_scrape_source_up{source} 0`), never exported as zeros.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

# Dead-letter reasons are free text naming exactly what was wrong; as a label they are put in three classes.
MALFORMED = re.compile(r"^(frame |empty frame|not a valid msgpack|trailing bytes|nested deeper|unknown message kind|"
                       r"event for store |[\w.]+: (frame |missing or non-integer schema_version|schema_version))")
UNAPPLICABLE_PREFIX = "could not be applied"


def reason_class(reason: str) -> str:
    """malformed (the frame could not be read), unapplicable (read, but applying it failed for good) or refused
    (read and not believed: `protocol.store_facts` and the desks' admission)."""
    if reason.startswith(UNAPPLICABLE_PREFIX):
        return "unapplicable"
    return "malformed" if MALFORMED.match(reason) else "refused"


@dataclass
class ScrapeInputs:
    version: str
    snapshot: dict | None = None
    # {"stream", "consumer", "pending", "ack_pending", "acked_stream_seq", "redelivered"} each
    consumers: list[dict] | None = None
    dead_letters: list[dict] | None = None  # {"store_id", "reason", "count"}
    errors: dict[str, str] = field(default_factory=dict)  # source -> why it could not be read


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def store_families(stores: list[dict]) -> list[Metric]:
    online = _gauge("freshmesh_store_online", "1 while the store's heartbeats arrive", ["store"])
    offline = _gauge("freshmesh_store_offline_seconds", "how long an offline store has been offline", ["store"])
    unseen = _gauge("freshmesh_store_unseen_seconds",
                    "a store never heard from: how long the store registry has been up without it", ["store"])
    age = _gauge("freshmesh_store_heartbeat_age_seconds", "age of the store's last heartbeat", ["store"])
    lag = _gauge("freshmesh_store_lag_ms", "till-to-cloud lag (the worse of the last event's and the oldest "
                 "unacked event's wait); online stores only", ["store"])
    lag_p99 = _gauge("freshmesh_store_lag_p99_ms", "the store's lag p99 as its registry measured it; online only",
                     ["store"])
    outbox = _gauge("freshmesh_store_outbox_depth", "events in the store's outbox as of its last heartbeat", ["store"])
    growing = _gauge("freshmesh_store_outbox_growing", "1 when the outbox grew over the last heartbeats (console rule)",
                     ["store"])
    devices = _gauge("freshmesh_store_device_state", "1 for the device's current state (online stores only)",
                     ["store", "device", "state"])
    disk = _gauge("freshmesh_store_disk_free_bytes", "free bytes of the box's data disk as of its last heartbeat "
                  "(last-known when offline: see freshmesh_store_heartbeat_age_seconds)", ["store"])
    events = CounterMetricFamily("freshmesh_store_events", "events the store registry counted from this store",
                                 labels=["store"])
    for s in stores:
        sid = s["store_id"]
        online.add_metric([sid], 1.0 if s["online"] else 0.0)
        if s.get("offline_for_s") is not None:
            offline.add_metric([sid], float(s["offline_for_s"]))
        if s.get("unseen_for_s") is not None:
            unseen.add_metric([sid], float(s["unseen_for_s"]))
        if s.get("heartbeat_age_s") is not None:
            age.add_metric([sid], float(s["heartbeat_age_s"]))
        if s.get("outbox_depth") is not None:
            outbox.add_metric([sid], float(s["outbox_depth"]))
        if s.get("disk_free_bytes", -1) >= 0:  # 0 is a full disk, -1 unknown
            disk.add_metric([sid], float(s["disk_free_bytes"]))
        events.add_metric([sid], float(s.get("events") or 0))
        if not s["online"]:
            continue  # the rest is last-known: not exported as if current
        if s.get("lag_ms") is not None:
            lag.add_metric([sid], float(s["lag_ms"]))
        if s.get("lag_p99_ms") is not None:
            lag_p99.add_metric([sid], float(s["lag_p99_ms"]))
        growing.add_metric([sid], 1.0 if s.get("outbox_growing") else 0.0)
        for device, state in sorted((s.get("devices") or {}).items()):
            devices.add_metric([sid, device, str(state)], 1.0)
    return [online, offline, unseen, age, lag, lag_p99, outbox, growing, devices, disk, events]


def actor_families(actors: list[dict]) -> list[Metric]:
    labels = ["actor", "kind", "shard"]
    health = _gauge("freshmesh_actor_health", "1 for the actor's current health (ok, starting, unresponsive, "
                    "restarted, not_ready, start_failed, restarting, dead)", [*labels, "health"])
    restarts = CounterMetricFamily("freshmesh_actor_restarts", "restarts of the actor (Ray's actor table)",
                                   labels=labels)
    queue = _gauge("freshmesh_actor_queue", "commands waiting in the actor's mailbox", labels)
    batch = _gauge("freshmesh_actor_batch", "size of the actor's last micro-batch", labels)
    commands = CounterMetricFamily("freshmesh_actor_commands", "commands the actor's incarnation applied", labels=labels)
    not_ready = _gauge("freshmesh_actor_not_ready_seconds", "how long an alive actor has not been ready", labels)
    for a in actors:
        key = [a["name"], a["kind"], a["shard"]]
        health.add_metric([*key, a["health"]], 1.0)
        restarts.add_metric(key, float(a.get("restarts") or 0))
        if a.get("queue") is not None:
            queue.add_metric(key, float(a["queue"]))
        if a.get("batch") is not None:
            batch.add_metric(key, float(a["batch"]))
        if a.get("commands") is not None:
            commands.add_metric(key, float(a["commands"]))
        if a.get("not_ready_s") is not None:
            not_ready.add_metric(key, float(a["not_ready_s"]))
    return [health, restarts, queue, batch, commands, not_ready]


def flash_families(business: dict | None) -> list[Metric]:
    units = _gauge("freshmesh_flash_units", "a flash sale's units by state (sold, leased to API workers, remaining)",
                   ["sale", "sku", "state"])
    quantity = _gauge("freshmesh_flash_quantity", "a flash sale's quantity", ["sale", "sku"])
    for f in (business or {}).get("flash") or []:
        for state in ("sold", "leased", "remaining"):
            if f.get(state) is not None:
                units.add_metric([f["sale_id"], f["sku"], state], float(f[state]))
        quantity.add_metric([f["sale_id"], f["sku"]], float(f["quantity"]))
    return [units, quantity]


def snapshot_families(snap: dict) -> list[Metric]:
    out = store_families(snap.get("stores") or []) + actor_families(snap.get("actors") or [])
    out += flash_families(snap.get("business"))
    shortages = _gauge("freshmesh_shortages", "shortages raised: confirmed online units a store cannot hand over", [])
    shortages.add_metric([], float(len(snap.get("shortages") or [])))
    out.append(shortages)
    audit = snap.get("audit")  # None until the first audit has run: the families are declared, without samples
    violations = _gauge("freshmesh_audit_violations", "invariant violations found by the last audit", [])
    unanswered = _gauge("freshmesh_audit_unanswered", "actors the last audit could not check", [])
    checked = _gauge("freshmesh_audit_actors_checked", "actors the last audit checked", [])
    if audit is not None:
        violations.add_metric([], float(len(audit.get("violations") or [])))
        unanswered.add_metric([], float(len(audit.get("unanswered") or [])))
        checked.add_metric([], float(audit.get("actors") or 0))
    out += [violations, unanswered, checked]
    sources = _gauge("freshmesh_console_source_error", "1 for each source the console could not read", ["source"])
    for source in sorted(snap.get("errors") or {}):
        sources.add_metric([source], 1.0)
    out.append(sources)
    return out


def consumer_families(consumers: list[dict]) -> list[Metric]:
    labels = ["stream", "consumer"]
    pending = _gauge("freshmesh_jetstream_consumer_pending", "messages not yet delivered to the consumer", labels)
    ack_pending = _gauge("freshmesh_jetstream_consumer_ack_pending", "delivered, not yet acked", labels)
    redelivered = _gauge("freshmesh_jetstream_consumer_redelivered", "messages redelivered at least once", labels)
    acked = CounterMetricFamily("freshmesh_jetstream_consumer_acked_stream_seq",
                                "the consumer's ack floor (stream sequence): its rate is the throughput", labels=labels)
    for c in consumers:
        key = [c["stream"], c["consumer"]]
        pending.add_metric(key, float(c["pending"]))
        ack_pending.add_metric(key, float(c["ack_pending"]))
        redelivered.add_metric(key, float(c["redelivered"]))
        acked.add_metric(key, float(c["acked_stream_seq"]))
    return [pending, ack_pending, redelivered, acked]


def dead_letter_families(rows: list[dict]) -> list[Metric]:
    dead = _gauge("freshmesh_dead_letters", "store events refused and kept with their reason (the kept window: "
                  "newest 1000 per store, 30 days)", ["store", "reason"])
    totals: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["store_id"] or "", reason_class(r["reason"]))
        totals[key] = totals.get(key, 0) + int(r["count"])
    for (store, reason), count in sorted(totals.items()):
        dead.add_metric([store, reason], float(count))
    return [dead]


def families(inputs: ScrapeInputs) -> Iterable[Metric]:
    info = InfoMetricFamily("freshmesh_build", "the running FreshMesh version")
    info.add_metric([], {"version": inputs.version})
    yield info
    up = _gauge("freshmesh_scrape_source_up", "1 when the source was read for this scrape", ["source"])
    for source, value in (("console", inputs.snapshot), ("jetstream", inputs.consumers),
                          ("database", inputs.dead_letters)):
        up.add_metric([source], 0.0 if value is None else 1.0)
    yield up
    if inputs.snapshot is not None:
        yield from snapshot_families(inputs.snapshot)
    if inputs.consumers is not None:
        yield from consumer_families(inputs.consumers)
    if inputs.dead_letters is not None:
        yield from dead_letter_families(inputs.dead_letters)
