"""The operator console's core: one snapshot of the chain, and its alerts, from what the shells gathered.

Pure: no I/O, no clock reads, no Ray or PostgreSQL (time is `inputs.now_ms`). What needs more than one look lives
in `ConsoleMemory`, which `build_snapshot` updates: throughput from counter deltas, restarts seen, outbox depth
across heartbeats, flash-sale sell rates, and since when each alert has been raised.

Guarantees of a snapshot:
- every actor of the system appears once (a name reused after a death shows its live incarnation); a DEAD or
  RESTARTING actor, one whose restart count went up within `restart_flag_s`, one whose start failed and one not
  ready (still rebuilding, or stuck) for over `not_ready_alert_s` is `bad` (shown red). Ray restarts a killed
  actor in well under a second, quicker than any poll, so "restarted recently" is what makes a crash visible;
- every store of the world appears, seen or not, ranked worst first: offline (longest first), never seen, then
  online ones with warnings, by lag then outbox depth;
- alerts: store offline longer than `offline_alert_s`, or never seen although the registry has been up that long
  (its view is soft state: after a restart a store that is down is simply absent), lag over `lag_alert_ms` (the
  10 s bar), outbox growing over `outbox_growth_samples` consecutive heartbeats, a device down or degraded, a
  shortage raised, the invariant audit failing or not covering every actor, an actor down, restarted or not
  ready, a data source unavailable. Each has a stable id and a `since`;
- times are epoch ms / UTC RFC 3339; "today" and the page's times of day are the chain's one time zone
  (`utc_offset_minutes`, the rule book's: China, UTC+8), named in the snapshot.
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field, fields
from itertools import pairwise
from typing import Any

from cloud.console.disk import disk_alerts, disk_fields, disk_warnings
from cloud.console.group_panel import group_buys_view
from protocol import order_lifecycle as lifecycle
from protocol.clock import to_rfc3339
from protocol.disk import DISK_LOW_WATER_BYTES
from protocol.money import weighed_amount_fen
from protocol.policy import CHAIN_UTC_OFFSET_MIN

ACTOR_KINDS = ("stock_pool", "member_ledger", "flash_sale", "order_router", "store_registry")
NOT_YET_ALIVE = ("RESTARTING", "PENDING_CREATION", "DEPENDENCIES_UNREADY")
BAD_HEALTH = ("dead", "restarting", "restarted", "start_failed", "not_ready")
DEVICE_FAULTS = ("down", "degraded")
ORDER_STATUSES = lifecycle.SHOWN_STATUSES
SOLD = lifecycle.PAID_STATUSES  # an online order counts as a sale once paid (until refunded)
RATE_WINDOW = 6  # samples (ticks) over which a rate is measured
BUSINESS_RATE_WINDOW = 3  # business figures are new every `business_every_s`: rates over the last few refreshes
DAY_MS = 86_400_000


@dataclass(frozen=True)
class ConsoleConfig:
    """Thresholds and cadences; `from_env` reads FRESHMESH_CONSOLE_<FIELD> (upper case) for each field."""
    offline_alert_s: float = 30.0  # a store offline longer than this raises an alert
    lag_alert_ms: int = 10_000  # the mission's bar for till-to-cloud lag
    outbox_growth_samples: int = 5  # heartbeats over which a never-shrinking, grown outbox raises an alert
    restart_flag_s: float = 60.0  # an actor restarted within this long is shown red
    not_ready_alert_s: float = 10.0  # an actor still not ready (rebuilding) after this long is shown red
    tick_s: float = 1.0  # one snapshot to every watcher this often
    business_every_s: float = 5.0  # the PostgreSQL figures are refreshed this often (queries cost)
    audit_every_s: float = 10.0  # the invariant audit asks every actor: far less often than a tick
    stats_timeout_s: float = 0.5  # a busy actor's stats are skipped (shown unresponsive), never waited for
    disk_low_water_bytes: int = DISK_LOW_WATER_BYTES  # a box with less free disk raises an alert (cloud/console/disk.py)

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"console config {f.name} must be positive, got {getattr(self, f.name)!r}")
        if self.outbox_growth_samples < 2:
            raise ValueError("console config outbox_growth_samples must be at least 2")

    @classmethod
    def from_env(cls, env=None) -> ConsoleConfig:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}  # field name -> an int or a float, as that field is declared
        for f in fields(cls):
            raw = env.get(f"FRESHMESH_CONSOLE_{f.name.upper()}")
            if raw is None:
                continue
            kind = int if f.type in (int, "int") else float
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ValueError(f"FRESHMESH_CONSOLE_{f.name.upper()}={raw!r}: expected a {kind.__name__}") from None
        return cls(**values)


@dataclass
class ConsoleInputs:
    """What the shells gathered for one snapshot. None means "could not be gathered" (see `errors`)."""
    now_ms: int
    prefix: str = ""  # actor names of this system start with it
    actors: list[dict] | None = None  # Ray's actor table: name, class_name, state, node_id, pid, num_restarts, ...
    actor_stats: dict[str, dict] = field(default_factory=dict)  # name -> the actor's own stats() answer
    nodes: dict[str, str] = field(default_factory=dict)  # node id -> address
    stores: dict[str, str] = field(default_factory=dict)  # the world's stores: id -> name
    registry: list[dict] | None = None  # StoreRegistry.view()
    business: dict | None = None  # see business_view
    audit: dict | None = None  # {"at_ms", "asked", "actors" (answered), "violations", "unanswered"} or {"at_ms", "error"}
    errors: dict[str, str] = field(default_factory=dict)  # source -> why it is missing
    worker: str = ""
    utc_offset_minutes: int = CHAIN_UTC_OFFSET_MIN  # the chain's time zone: "today" and the page's clock


@dataclass
class ConsoleMemory:
    rates: dict[str, deque] = field(default_factory=dict)  # key -> recent (incarnation, counter, at_ms)
    restarts: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # actor -> (count, when it went up)
    outbox: dict[str, deque] = field(default_factory=dict)  # store -> recent (heartbeat ms, depth)
    alert_since: dict[str, int] = field(default_factory=dict)
    not_ready: dict[str, tuple] = field(default_factory=dict)  # actor -> ((pid, restarts), first seen not ready ms)
    registry_since: tuple | None = None  # (registry incarnation, when this console first saw it answer)

    def rate(self, key: str, incarnation, counter: float, at_ms: int, window: int = RATE_WINDOW) -> float | None:
        """Per second over the last `window` samples, each timed by when its figure was read (`at_ms`); a new
        incarnation (restart) starts the count again. The same figure seen again (same or older `at_ms`) is not a
        new sample: figures refreshed less often than they are looked at would otherwise give 0, then double."""
        samples = self.rates.get(key)
        if samples is None or samples.maxlen != window:
            samples = self.rates[key] = deque(maxlen=window)
        if samples and samples[-1][0] != incarnation:
            samples.clear()
        if not samples or at_ms > samples[-1][2]:
            samples.append((incarnation, counter, at_ms))
        first, last = samples[0], samples[-1]
        if last[2] <= first[2]:
            return None
        return round(max(last[1] - first[1], 0) * 1000 / (last[2] - first[2]), 1)


def local_day_start_ms(now_ms: int, utc_offset_minutes: int) -> int:
    """Midnight of the chain's local day (the rule book's UTC offset) that contains now_ms, in epoch ms."""
    offset = utc_offset_minutes * 60_000
    return (now_ms + offset) // DAY_MS * DAY_MS - offset


def parse_actor_name(name: str, prefix: str) -> tuple[str, str] | None:
    """'<prefix>stock_pool-3' -> ('stock_pool', '3'); '<prefix>order_router' -> ('order_router', ''); None if
    the name is not one of this system's actors."""
    if not name or not name.startswith(prefix):
        return None
    rest = name[len(prefix):]
    for kind in ACTOR_KINDS:
        if rest == kind:
            return kind, ""
        if rest.startswith(kind + "-"):
            return kind, rest[len(kind) + 1:]
    return None


def current_incarnations(actors: list[dict], prefix: str) -> list[dict]:
    """One entry per name: the live one if any (a dead name can be taken again), else the latest dead one."""
    best: dict[str, dict] = {}
    for a in actors:
        if parse_actor_name(a.get("name") or "", prefix) is None:
            continue
        old = best.get(a["name"])
        rank = (a.get("state") != "DEAD", a.get("start_ms") or 0)
        if old is None or rank > (old.get("state") != "DEAD", old.get("start_ms") or 0):
            best[a["name"]] = a
    return list(best.values())


def _shard_key(shard: str):
    return (0, int(shard), "") if shard.isdigit() else (1, 0, shard)


def actor_rows(inputs: ConsoleInputs, memory: ConsoleMemory, config: ConsoleConfig) -> list[dict]:
    now, rows = inputs.now_ms, []
    for a in current_incarnations(inputs.actors or [], inputs.prefix):
        name = a["name"]
        parsed = parse_actor_name(name, inputs.prefix)
        if parsed is None:  # not reached: current_incarnations keeps only this system's actors
            continue
        kind, shard = parsed
        restarts = int(a.get("num_restarts") or 0)
        seen = memory.restarts.get(name)
        if seen is None:
            memory.restarts[name] = (restarts, None)  # restarts before we looked are history, not news
        elif restarts > seen[0]:
            memory.restarts[name] = (restarts, now)
        restarted_ms = memory.restarts[name][1]
        recent = restarted_ms is not None and now - restarted_ms <= config.restart_flag_s * 1000
        state = a.get("state") or "UNKNOWN"
        got = inputs.actor_stats.get(name) if state == "ALIVE" else None
        stats: dict = got or {}
        answered = got is not None and "error" not in got
        start_error = (stats.get("start_error") or "") if answered else ""
        # Alive but not ready: its rebuild from PostgreSQL has not finished (or never will). Timed from the first
        # look at this incarnation, so a rebuild that takes a moment is not news but a stuck one is.
        not_ready_s = None
        if answered and stats.get("ready") is False:
            incarnation = (a.get("pid"), restarts)
            seen_not_ready = memory.not_ready.get(name)
            if seen_not_ready is None or seen_not_ready[0] != incarnation:
                seen_not_ready = memory.not_ready[name] = (incarnation, now)
            not_ready_s = round((now - seen_not_ready[1]) / 1000, 1)
        else:
            memory.not_ready.pop(name, None)
        if state == "DEAD":
            health = "dead"
        elif state in NOT_YET_ALIVE:
            health = "restarting"
        elif start_error:
            health = "start_failed"
        elif not_ready_s is not None and not_ready_s > config.not_ready_alert_s:
            health = "not_ready"
        elif recent:
            health = "restarted"
        elif not answered:
            health = "unresponsive"
        elif not_ready_s is not None:
            health = "starting"
        else:
            health = "ok"
        commands = stats.get("commands") if answered else None
        throughput = memory.rate(f"actor:{name}", a.get("pid"), commands, now) if commands is not None else None
        last_error = (start_error or stats.get("last_error") or stats.get("error")
                      or a.get("death_cause") or "")
        if not last_error and recent:
            last_error = f"restarted at {to_rfc3339(restarted_ms)} (restart #{restarts})"
        rows.append({
            "name": name, "kind": kind, "shard": shard, "state": state, "health": health, "bad": health in BAD_HEALTH,
            "node_id": a.get("node_id") or "", "node": inputs.nodes.get(a.get("node_id") or "", a.get("node_id") or "")[:40],
            "pid": a.get("pid"), "restarts": restarts, "restarted_at": to_rfc3339(restarted_ms),
            "queue": stats.get("queue") if answered else None, "batch": stats.get("last_batch") if answered else None,
            "commands": commands, "throughput_per_s": throughput, "seq": stats.get("seq") if answered else None,
            "ready": stats.get("ready") if answered else None, "errors": stats.get("errors") if answered else None,
            "not_ready_s": not_ready_s, "last_error": str(last_error)[:300],
        })
    if inputs.actors is not None:  # forget actors that are gone (flash gates come and go); not on a failed read
        names = {r["name"] for r in rows}
        memory.restarts = {k: v for k, v in memory.restarts.items() if k in names}
        memory.not_ready = {k: v for k, v in memory.not_ready.items() if k in names}
        memory.rates = {k: v for k, v in memory.rates.items() if not k.startswith("actor:") or k[6:] in names}
    rows.sort(key=lambda r: (not r["bad"], r["health"] == "ok", ACTOR_KINDS.index(r["kind"]), _shard_key(r["shard"])))
    return rows


def registry_up_s(inputs: ConsoleInputs, memory: ConsoleMemory) -> float | None:
    """How long the store registry has been up, as far as this console knows: since it first answered this
    console, or since its last restart seen in the actor table (a restarted registry has forgotten every store).
    None while it cannot be read."""
    name = f"{inputs.prefix}store_registry"
    row = next((a for a in current_incarnations(inputs.actors or [], inputs.prefix) if a["name"] == name), None)
    incarnation = None if row is None else (row.get("pid"), int(row.get("num_restarts") or 0))
    if inputs.registry is None:
        return None
    known = memory.registry_since
    if known is None or (inputs.actors is not None and incarnation != known[0]):
        known = memory.registry_since = (incarnation, inputs.now_ms)
    return round(max(inputs.now_ms - known[1], 0) / 1000, 1)


def store_rows(inputs: ConsoleInputs, memory: ConsoleMemory, config: ConsoleConfig) -> list[dict]:
    now = inputs.now_ms
    live = {s["store_id"]: s for s in inputs.registry or []}
    up_s = registry_up_s(inputs, memory)
    rows = []
    for store_id in sorted(set(inputs.stores) | set(live)):
        s = live.get(store_id)
        row: dict[str, Any] = {
            "store_id": store_id, "name": inputs.stores.get(store_id, store_id), "online": False,
            "status": "unknown" if inputs.registry is None else "never_seen", "offline_since": None,
            "offline_for_s": None, "last_heartbeat": None, "heartbeat_age_s": None, "outbox_depth": None,
            "outbox_growing": False, "lag_ms": None, "lag_p99_ms": None, "unacked_age_ms": 0, "lag_over": False,
            "sequence_gap": None, "events": 0, "devices": {}, "device_faults": [], "warnings": [], "unseen_for_s": None,
            "missing": False, **disk_fields(s, config.disk_low_water_bytes)}
        if s is None and up_s is not None:
            # never heard from while the registry has been up: once that is longer than a store may be offline
            # unnoticed, it is as bad as offline (a store down across a cloud restart is never seen, not offline)
            row.update(unseen_for_s=up_s, missing=up_s > config.offline_alert_s)
        if s is not None:
            hb = s.get("last_heartbeat_ms")
            history = memory.outbox.setdefault(store_id, deque(maxlen=config.outbox_growth_samples))
            if hb is not None and (not history or history[-1][0] != hb):
                history.append((hb, s.get("outbox_depth") or 0))
            depths = [d for _, d in history]
            growing = (bool(s.get("online")) and len(depths) == config.outbox_growth_samples
                       and all(b >= a for a, b in pairwise(depths)) and depths[-1] > depths[0])
            devices = dict(s.get("devices") or {})
            # the worse of the last event's lag and how long the oldest unacked event has waited: a stuck relay
            # (heartbeats still coming) shows in the second, never in the first
            unacked = s.get("unacked_age_ms") or 0
            lag = max(s.get("lag_ms") or 0, unacked) if (s.get("lag_ms") is not None or unacked) else None
            row.update(unacked_age_ms=unacked, online=bool(s.get("online")),
                       offline_since=to_rfc3339(s.get("offline_since_ms")),
                       last_heartbeat=to_rfc3339(hb), heartbeat_age_s=None if hb is None else round((now - hb) / 1000, 1),
                       outbox_depth=s.get("outbox_depth"), outbox_growing=growing, lag_ms=lag,
                       lag_p99_ms=s.get("lag_p99_ms"), lag_over=lag is not None and lag > config.lag_alert_ms,
                       sequence_gap=s.get("sequence_gap"), events=s.get("events", 0), devices=devices,
                       device_faults=sorted(d for d, st in devices.items() if st in DEVICE_FAULTS))
            if not row["online"]:
                since = s.get("offline_since_ms") or hb
                row["offline_for_s"] = None if since is None else round(max(now - since, 0) / 1000, 1)
            row["warnings"] = ([f"lag {lag} ms"] if row["lag_over"] else []) + (
                [f"outbox growing ({depths[0]} -> {depths[-1]})"] if growing else []) + [
                f"{d} {devices[d]}" for d in row["device_faults"]] + disk_warnings(row)
            row["status"] = "offline" if not row["online"] else "warning" if row["warnings"] else "ok"
        rows.append(row)
    group = {"offline": 0, "never_seen": 1, "unknown": 1, "warning": 2, "ok": 2}
    rows.sort(key=lambda r: (group[r["status"]], -(r["offline_for_s"] or 0), not r["warnings"], -(r["lag_ms"] or 0),
                             -(r["outbox_depth"] or 0), r["store_id"]))
    for rank, row in enumerate(rows):
        row["rank"] = rank
    return rows


def _sum(rows: list[dict], count: str = "count", fen: str = "fen") -> dict:
    return {"count": sum(r.get(count) or 0 for r in rows), "fen": sum(r.get(fen) or 0 for r in rows)}


def business_view(inputs: ConsoleInputs, memory: ConsoleMemory) -> dict | None:
    """Today's figures (the chain's local day) with totals and live flash-sale rates."""
    raw, now = inputs.business, inputs.now_ms
    if raw is None:
        return None
    read_ms = raw.get("rates_at_ms") or raw.get("at_ms", now)  # rates: timed by when the counters were read
    # the status each order shows (a paid order held for its group buy: group_forming), as everywhere else
    orders = [{**o, "status": lifecycle.shown(o["status"], bool(o.get("group_held")))} for o in raw.get("orders", [])]
    sold = [o for o in orders if o["status"] in SOLD]
    till, online = _sum(raw.get("till_by_store", [])), _sum(sold)
    till_sv = _sum(raw.get("till_by_store", []), "sv_count", "sv_fen")
    by_store: dict[str, dict] = {}
    for r in raw.get("till_by_store", []):
        by_store.setdefault(r["store_id"], {"store_id": r["store_id"]}).update(till_count=r["count"], till_fen=r["fen"])
    for r in raw.get("online_by_store", []):
        by_store.setdefault(r["store_id"], {"store_id": r["store_id"]}).update(online_count=r["count"], online_fen=r["fen"])
    stores = []
    for r in by_store.values():
        r = {"till_count": 0, "till_fen": 0, "online_count": 0, "online_fen": 0, **r}
        stores.append({**r, "total_fen": r["till_fen"] + r["online_fen"]})
    stores.sort(key=lambda r: (-r["total_fen"], r["store_id"]))
    statuses: dict[str, int] = {}
    for o in orders:
        statuses[o["status"]] = statuses.get(o["status"], 0) + o["count"]
    order_of = {s: i for i, s in enumerate(ORDER_STATUSES)}
    flash = []
    for f in raw.get("flash", []):
        live = f["starts_ms"] <= now < f["ends_ms"] and f["remaining"] > 0
        flash.append({**f, "live": live, "starts_at": to_rfc3339(f["starts_ms"]), "ends_at": to_rfc3339(f["ends_ms"]),
                      "sold_per_s": memory.rate(f"sale:{f['sale_id']}", 0, f["sold"], read_ms, BUSINESS_RATE_WINDOW)})
    flash.sort(key=lambda f: (not f["live"], -f["ends_ms"]))
    sales = {f"sale:{f['sale_id']}" for f in flash}
    memory.rates = {k: v for k, v in memory.rates.items() if not k.startswith("sale:") or k in sales}
    throttled = raw.get("flash_throttled_total")
    online_sv = _sum(sold, "sv_count", "sv_fen")
    return {
        "day_start": to_rfc3339(raw.get("day_start_ms")), "as_of": to_rfc3339(raw.get("at_ms")),
        "age_s": None if raw.get("at_ms") is None else round((now - raw["at_ms"]) / 1000, 1),
        "sales": {"till": till, "online": online, "total_fen": till["fen"] + online["fen"]},
        "by_store": stores,
        "orders_by_status": [{"status": s, "count": n} for s, n in
                             sorted(statuses.items(), key=lambda kv: (order_of.get(kv[0], 99), kv[0]))],
        "flash": flash,
        # this API worker's 429s only: each worker throttles its own share of a sale's rate
        "throttled_per_s": None if throttled is None else memory.rate("throttled", 0, throttled, read_ms,
                                                                      BUSINESS_RATE_WINDOW),
        "members": {"topups": raw.get("topups"),
                    "stored_value_spent": {"till": till_sv, "online": online_sv,
                                           "fen": till_sv["fen"] + online_sv["fen"]}},
        "shrinkage": shrinkage_by_reason(raw.get("shrinkage", []), raw.get("prices") or {}),
        "refused": refused_view(raw.get("refused_by_store", []), raw.get("refused_recent", [])),
        "group_buys": group_buys_view(raw.get("group_buys"), now),
    }


def refused_view(by_store: list[dict], recent: list[dict]) -> dict:
    """Store events the cloud refused today (dead letters: not believed, malformed, or over the store's rate): per
    store, most first, and the newest ones with their reasons (what the store sent is named by its subject)."""
    stores = sorted(({"store_id": r["store_id"] or "(no store)", "count": r["count"], "last_at": to_rfc3339(r["last_ms"])}
                     for r in by_store), key=lambda r: (-r["count"], r["store_id"]))
    return {"total": sum(r["count"] for r in stores), "by_store": stores,
            "recent": [{"store_id": r["store_id"] or "(no store)", "kind": r["subject"].split(".evt.", 1)[-1]
                        if ".evt." in r["subject"] else r["subject"], "reason": r["reason"],
                        "raw_bytes": r["raw_bytes"], "at": to_rfc3339(r["at_ms"])} for r in recent]}


def shrinkage_by_reason(rows: list[dict], prices: dict[str, dict]) -> list[dict]:
    """Shrinkage per reason, valued at list price: quantities are pieces or grams depending on the SKU, so only
    their value adds up (per piece, or per kg x grams / 1000); and at cost when the rows carry it (`cost_fen`:
    valued per lot by `cloud.services.losses`). A SKU without a price (no longer in the catalogue) is counted in
    `unpriced_events`, not silently valued at 0."""
    out: dict[str, dict] = {}
    for r in rows:
        agg = out.setdefault(r["reason"], {"reason": r["reason"], "events": 0, "value_fen": 0, "unpriced_events": 0})
        agg["events"] += r["events"]
        if "cost_fen" in r:
            agg["cost_fen"] = agg.get("cost_fen", 0) + r["cost_fen"]
        price = prices.get(r["sku"])
        if price is None:
            agg["unpriced_events"] += r["events"]
        elif price["unit"] == "kg":
            agg["value_fen"] += weighed_amount_fen(r["qty"], price["price_fen"])
        else:
            agg["value_fen"] += r["qty"] * price["price_fen"]
    return sorted(out.values(), key=lambda r: (-r["value_fen"], -r["events"], r["reason"]))


def audit_view(audit: dict | None) -> dict | None:
    """The last audit and what it shows: `ok` only when it ran, covered every live audited actor (and at least
    one) and found nothing. An actor that timed out is not an actor that passed."""
    if audit is None:
        return None
    violations, unanswered = audit.get("violations") or [], audit.get("unanswered") or []
    if audit.get("error"):
        status = "error"
    elif violations:
        status = "violations"
    elif unanswered:
        status = "incomplete"
    elif not audit.get("actors"):
        status = "empty"
    else:
        status = "ok"
    return {"at": to_rfc3339(audit.get("at_ms")), "actors": audit.get("actors"), "asked": audit.get("asked"),
            "violations": violations, "error": audit.get("error"), "unanswered": unanswered, "status": status,
            "ok": status == "ok"}


def utc_offset_label(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def shortages_of(inputs: ConsoleInputs) -> list[dict]:
    out = []
    for name, stats in sorted(inputs.actor_stats.items()):
        for s in (stats or {}).get("shortages") or []:
            out.append({**s, "actor": name})
    return out


def _alert(kind: str, subject: str, severity: str, message: str) -> dict:
    return {"id": f"{kind}:{subject}", "kind": kind, "subject": subject, "severity": severity, "message": message}


def alert_list(inputs: ConsoleInputs, actors: list[dict], stores: list[dict], shortages: list[dict],
               audit: dict | None, config: ConsoleConfig) -> list[dict]:
    out = []
    for a in actors:
        if a["health"] in ("dead", "restarting"):
            out.append(_alert("actor_down", a["name"], "critical", f"actor {a['name']} is {a['state']}"))
        elif a["health"] == "start_failed":
            out.append(_alert("actor_not_ready", a["name"], "critical", f"actor {a['name']} cannot start: "
                                                                        f"{a['last_error']}"))
        elif a["health"] == "not_ready":
            out.append(_alert("actor_not_ready", a["name"], "critical",
                              f"actor {a['name']} not ready for {a['not_ready_s']:.0f} s: its rebuild from "
                              f"PostgreSQL has not finished"))
        elif a["health"] == "restarted":
            out.append(_alert("actor_restarted", a["name"], "warning",
                              f"actor {a['name']} restarted at {a['restarted_at']} ({a['restarts']} restarts)"))
    for s in stores:
        sid = s["store_id"]
        if s["status"] == "offline" and (s["offline_for_s"] or 0) > config.offline_alert_s:
            out.append(_alert("store_offline", sid, "critical", f"store {sid} offline for {s['offline_for_s']:.0f} s "
                                                                f"(since {s['offline_since']})"))
        if s["missing"]:
            out.append(_alert("store_never_seen", sid, "critical",
                              f"store {sid} not heard from since the store registry started "
                              f"{s['unseen_for_s']:.0f} s ago"))
        if not s["online"]:
            continue
        if s["lag_over"]:
            out.append(_alert("lag", sid, "warning", f"store {sid}: till-to-cloud lag {s['lag_ms']} ms is over "
                                                     f"the {config.lag_alert_ms} ms bar"))
        if s["outbox_growing"]:
            out.append(_alert("outbox_growing", sid, "warning", f"store {sid}: outbox growing, now {s['outbox_depth']} "
                                                                f"events waiting for the cloud's ack"))
        for d in s["device_faults"]:
            out.append(_alert("device", f"{sid}/{d}", "warning", f"store {sid}: {d} is {s['devices'][d]}"))
    out += disk_alerts(stores, config.disk_low_water_bytes)
    for sh in shortages:
        out.append(_alert("shortage", sh.get("reservation_id", "?"), "critical",
                          f"shortage at {sh.get('store')}: {sh.get('qty')} x {sh.get('sku')} of order "
                          f"{sh.get('order_id')} cannot be handed over; re-route it"))
    if audit and audit["violations"]:
        v = audit["violations"]
        out.append(_alert("audit", "invariants", "critical",
                          f"invariant audit failing: {len(v)} violation(s); first: {v[0]}"))
    if audit and audit["unanswered"]:
        u = audit["unanswered"]
        out.append(_alert("audit_incomplete", "invariants", "warning",
                          f"invariant audit incomplete: {len(u)} of {audit['asked'] or len(u)} actor(s) not audited; "
                          f"first: {u[0]}"))
    elif audit and audit["status"] == "empty":
        out.append(_alert("audit_incomplete", "invariants", "warning", "invariant audit checked no actor"))
    # an audit that failed to run at all is reported by the shell as an unreadable source (inputs.errors)
    for source, why in sorted(inputs.errors.items()):
        out.append(_alert("source", source, "warning", f"console cannot read {source}: {why}"))
    return out


def build_snapshot(inputs: ConsoleInputs, memory: ConsoleMemory, config: ConsoleConfig) -> dict:
    """The console's whole picture at `inputs.now_ms` (JSON-ready); updates `memory`."""
    now = inputs.now_ms
    actors = actor_rows(inputs, memory, config)
    stores = store_rows(inputs, memory, config)
    shortages = shortages_of(inputs)
    audit = audit_view(inputs.audit)
    alerts = alert_list(inputs, actors, stores, shortages, audit, config)
    for a in alerts:
        a["since"] = to_rfc3339(memory.alert_since.setdefault(a["id"], now))
    memory.alert_since = {k: v for k, v in memory.alert_since.items() if k in {a["id"] for a in alerts}}
    severity = {"critical": 0, "warning": 1}
    alerts.sort(key=lambda a: (severity[a["severity"]], a["since"], a["id"]))
    return {
        "at": to_rfc3339(now), "at_ms": now, "worker": inputs.worker,
        "timezone": {"utc_offset_minutes": inputs.utc_offset_minutes, "name": utc_offset_label(inputs.utc_offset_minutes)},
        "summary": {"actors": len(actors), "actors_bad": sum(a["bad"] for a in actors),
                    "stores": len(stores), "stores_online": sum(s["online"] for s in stores),
                    "alerts": len(alerts), "critical": sum(a["severity"] == "critical" for a in alerts)},
        "actors": actors, "stores": stores, "business": business_view(inputs, memory), "shortages": shortages,
        "audit": audit,
        "alerts": alerts, "errors": dict(inputs.errors),
        "thresholds": {"offline_alert_s": config.offline_alert_s, "lag_alert_ms": config.lag_alert_ms,
                       "outbox_growth_samples": config.outbox_growth_samples, "restart_flag_s": config.restart_flag_s,
                       "not_ready_alert_s": config.not_ready_alert_s,
                       "disk_low_water_bytes": config.disk_low_water_bytes},
    }
