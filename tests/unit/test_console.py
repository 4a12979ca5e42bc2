"""The console's pure core: actor health, store ranking, alerts with thresholds, business totals (no servers)."""
from __future__ import annotations

import pytest

from cloud.console.snapshot import (
    ConsoleConfig,
    ConsoleInputs,
    ConsoleMemory,
    build_snapshot,
    current_incarnations,
    local_day_start_ms,
    parse_actor_name,
)
from protocol.clock import to_rfc3339

T0 = 1_800_000_000_000
CFG = ConsoleConfig(offline_alert_s=30, lag_alert_ms=10_000, outbox_growth_samples=4, restart_flag_s=60)


def actor(name, state="ALIVE", restarts=0, pid=100, start_ms=1, **extra):
    return {"actor_id": f"id-{name}-{start_ms}", "name": name, "class_name": "ActorHost", "state": state,
            "node_id": "n1", "address": "127.0.0.1", "pid": pid, "num_restarts": restarts, "death_cause": "",
            "start_ms": start_ms, "end_ms": 0, **extra}


def stats(commands=0, queue=0, **extra):
    return {"ready": True, "queue": queue, "commands": commands, "last_batch": 3, "seq": commands, "errors": 0,
            "last_error": "", **extra}


def registry_row(store_id, hb_ms, online=True, outbox=0, lag=50, devices=None, offline_since=None):
    return {"store_id": store_id, "last_heartbeat_ms": hb_ms, "online": online, "outbox_depth": outbox,
            "lag_ms": lag, "lag_p99_ms": lag, "sequence_gap": 0, "events": 3, "offline_since_ms": offline_since,
            "devices": devices or {"scale": "ok", "scanner": "ok", "printer": "ok"}}


def inputs(now, actors=(), actor_stats=None, registry=None, stores=None, **kw):
    return ConsoleInputs(now_ms=now, prefix="p-", actors=list(actors), actor_stats=actor_stats or {},
                         stores=stores if stores is not None else {"S001": "One", "S002": "Two", "S003": "Three"},
                         registry=registry if registry is not None else [], **kw)


def kinds(snapshot):
    return {(a["kind"], a["subject"]) for a in snapshot["alerts"]}


def test_actor_names_give_kind_and_shard_only_for_this_systems_prefix():
    assert parse_actor_name("p-stock_pool-3", "p-") == ("stock_pool", "3")
    assert parse_actor_name("p-flash_sale-01J9ABC", "p-") == ("flash_sale", "01J9ABC")
    assert parse_actor_name("p-order_router", "p-") == ("order_router", "")
    assert parse_actor_name("p-store_registry", "p-") == ("store_registry", "")
    assert parse_actor_name("q-stock_pool-3", "p-") is None
    assert parse_actor_name("p-something_else", "p-") is None
    assert parse_actor_name("", "") is None


def test_a_name_taken_again_after_a_death_shows_the_live_incarnation():
    rows = current_incarnations([actor("p-stock_pool-0", "DEAD", start_ms=5), actor("p-stock_pool-0", start_ms=9),
                                 actor("p-stock_pool-1", "DEAD", start_ms=3), actor("other", start_ms=1)], "p-")
    assert {(r["name"], r["state"]) for r in rows} == {("p-stock_pool-0", "ALIVE"), ("p-stock_pool-1", "DEAD")}


def test_dead_and_restarting_actors_are_red_and_alerted_first():
    memory = ConsoleMemory()
    snap = build_snapshot(inputs(T0, [actor("p-stock_pool-0"), actor("p-stock_pool-1", "DEAD"),
                                      actor("p-member_ledger-0", "RESTARTING")],
                                 {"p-stock_pool-0": stats()}), memory, CFG)
    health = {a["name"]: (a["health"], a["bad"]) for a in snap["actors"]}
    assert health == {"p-stock_pool-0": ("ok", False), "p-stock_pool-1": ("dead", True),
                      "p-member_ledger-0": ("restarting", True)}
    assert [a["bad"] for a in snap["actors"]] == [True, True, False]
    assert {("actor_down", "p-stock_pool-1"), ("actor_down", "p-member_ledger-0")} <= kinds(snap)
    assert snap["summary"]["actors_bad"] == 2


def test_a_restart_seen_between_looks_stays_red_for_the_flag_window_then_clears():
    memory = ConsoleMemory()
    # restarts that happened before the console first looked are history, not news
    first = build_snapshot(inputs(T0, [actor("p-stock_pool-0", restarts=2)], {"p-stock_pool-0": stats()}), memory, CFG)
    assert first["actors"][0]["health"] == "ok"
    # Ray restarted it between two ticks: state ALIVE again, count up, new pid
    again = build_snapshot(inputs(T0 + 1000, [actor("p-stock_pool-0", restarts=3, pid=200)],
                                  {"p-stock_pool-0": stats()}), memory, CFG)
    row = again["actors"][0]
    assert (row["state"], row["health"], row["bad"], row["restarts"]) == ("ALIVE", "restarted", True, 3)
    assert "restart #3" in row["last_error"] and ("actor_restarted", "p-stock_pool-0") in kinds(again)
    later = build_snapshot(inputs(T0 + 1000 + 60_001, [actor("p-stock_pool-0", restarts=3, pid=200)],
                                  {"p-stock_pool-0": stats()}, stores={}), memory, CFG)
    assert later["actors"][0]["health"] == "ok" and not later["alerts"]


def test_an_alive_actor_without_stats_is_unresponsive_not_red():
    snap = build_snapshot(inputs(T0, [actor("p-order_router")], {"p-order_router": {"error": "no answer"}}),
                          ConsoleMemory(), CFG)
    row = snap["actors"][0]
    assert (row["health"], row["bad"], row["last_error"], row["queue"]) == ("unresponsive", False, "no answer", None)


def test_throughput_comes_from_counter_deltas_and_restarts_with_a_new_incarnation():
    memory = ConsoleMemory()
    rates = []
    for i, (pid, commands) in enumerate([(100, 1000), (100, 1500), (100, 2500), (200, 10), (200, 110)]):
        snap = build_snapshot(inputs(T0 + i * 1000, [actor("p-stock_pool-0", pid=pid)],
                                     {"p-stock_pool-0": stats(commands=commands, queue=7)}), memory, CFG)
        rates.append(snap["actors"][0]["throughput_per_s"])
    assert rates == [None, 500.0, 750.0, None, 100.0]
    assert snap["actors"][0]["queue"] == 7 and snap["actors"][0]["batch"] == 3


def test_stores_are_ranked_worst_first_and_offline_alerts_wait_for_the_threshold():
    memory = ConsoleMemory()
    registry = [registry_row("S001", T0 - 1000, lag=200, outbox=4),
                registry_row("S002", T0 - 10_000, online=False, offline_since=T0 - 10_000),
                registry_row("S003", T0 - 500, lag=15_000)]
    stores = {"S001": "One", "S002": "Two", "S003": "Three", "S004": "Four"}
    snap = build_snapshot(inputs(T0, registry=registry, stores=stores), memory, CFG)
    order = [(s["store_id"], s["status"]) for s in snap["stores"]]
    assert order == [("S002", "offline"), ("S004", "never_seen"), ("S003", "warning"), ("S001", "ok")]
    assert [s["rank"] for s in snap["stores"]] == [0, 1, 2, 3]
    s2 = snap["stores"][0]
    assert (s2["online"], s2["offline_for_s"], s2["offline_since"]) == (False, 10.0, to_rfc3339(T0 - 10_000))
    assert ("store_offline", "S002") not in kinds(snap), "offline 10 s is under the 30 s threshold"
    assert ("lag", "S003") in kinds(snap) and snap["stores"][2]["lag_over"]
    later = build_snapshot(inputs(T0 + 25_000, registry=registry, stores=stores), memory, CFG)
    assert ("store_offline", "S002") in kinds(later)
    alert = next(a for a in later["alerts"] if a["kind"] == "store_offline")
    assert alert["severity"] == "critical" and "35 s" in alert["message"]


def test_a_stuck_relay_alerts_on_lag_by_the_age_of_its_oldest_unacked_event():
    """The last received event's lag was fine, but heartbeats say the oldest unacked event has waited 25 s."""
    fresh = {**registry_row("S001", T0 - 500, lag=80), "unacked_age_ms": 300}
    stuck = {**registry_row("S002", T0 - 500, lag=80), "unacked_age_ms": 25_000}
    snap = build_snapshot(inputs(T0, registry=[fresh, stuck]), ConsoleMemory(), CFG)
    rows = {s["store_id"]: s for s in snap["stores"]}
    assert not rows["S001"]["lag_over"] and rows["S001"]["lag_ms"] == 300
    assert rows["S002"]["lag_over"] and rows["S002"]["lag_ms"] == 25_000 and rows["S002"]["unacked_age_ms"] == 25_000
    assert ("lag", "S002") in kinds(snap) and ("lag", "S001") not in kinds(snap)


def test_outbox_growing_needs_consecutive_heartbeats_that_never_shrink():
    memory = ConsoleMemory()
    seen = []
    for i, depth in enumerate([1, 3, 3, 8, 9, 2, 4, 6]):
        snap = build_snapshot(inputs(T0 + i * 1000, registry=[registry_row("S001", T0 + i * 1000, outbox=depth)]),
                              memory, CFG)
        seen.append(("outbox_growing", "S001") in kinds(snap))
    # window of 4 heartbeats: [1,3,3,8] grows, [3,3,8,9] grows, then a drop clears it until 4 rising samples again
    assert seen == [False, False, False, True, True, False, False, False]
    snap = build_snapshot(inputs(T0 + 8000, registry=[registry_row("S001", T0 + 8000, outbox=7)]), memory, CFG)
    assert ("outbox_growing", "S001") in kinds(snap)
    # the same heartbeat seen twice (ticks faster than heartbeats) is one sample, not two
    snap = build_snapshot(inputs(T0 + 8500, registry=[registry_row("S001", T0 + 8000, outbox=7)]), memory, CFG)
    assert len(memory.outbox["S001"]) == 4


def test_device_faults_shortages_audit_and_sources_raise_alerts_with_a_stable_since():
    memory = ConsoleMemory()
    reg = [registry_row("S001", T0, devices={"scale": "down", "scanner": "ok", "printer": "degraded"})]
    shortage = {"reservation_id": "R1", "order_id": "O1", "store": "S001", "sku": "EGG", "qty": 2, "raised_ms": T0}
    audit = {"at_ms": T0, "actors": 5, "violations": ["p-stock_pool-0: S001/EGG: reserved 5 exceeds escrow 4"]}
    args = dict(actors=[actor("p-stock_pool-0")], actor_stats={"p-stock_pool-0": stats(shortages=[shortage])},
                registry=reg, audit=audit, errors={"business figures": "ConnectionError: down"})
    first = build_snapshot(inputs(T0, **args), memory, CFG)
    assert {("device", "S001/scale"), ("device", "S001/printer"), ("shortage", "R1"), ("audit", "invariants"),
            ("source", "business figures")} <= kinds(first)
    assert next(s for s in first["stores"] if s["store_id"] == "S001")["device_faults"] == ["printer", "scale"]
    assert first["shortages"][0]["actor"] == "p-stock_pool-0"
    assert [a["severity"] for a in first["alerts"]][:2] == ["critical", "critical"]
    second = build_snapshot(inputs(T0 + 5000, **args), memory, CFG)
    assert {a["id"]: a["since"] for a in second["alerts"]} == {a["id"]: a["since"] for a in first["alerts"]}
    args["audit"] = {"at_ms": T0 + 9000, "actors": 5, "violations": []}
    build_snapshot(inputs(T0 + 9000, **args), memory, CFG)
    args["audit"] = audit
    third = build_snapshot(inputs(T0 + 10_000, **args), memory, CFG)
    since = {a["id"]: a["since"] for a in third["alerts"]}
    assert since["audit:invariants"] != since["shortage:R1"], "a cleared alert starts a new since when raised again"


def test_unreadable_registry_marks_stores_unknown_and_says_why():
    snap = build_snapshot(ConsoleInputs(now_ms=T0, stores={"S001": "One"}, registry=None,
                                        errors={"store registry": "TimeoutError"}), ConsoleMemory(), CFG)
    assert snap["stores"][0]["status"] == "unknown" and ("source", "store registry") in kinds(snap)


def test_business_totals_by_channel_store_status_flash_and_members():
    memory = ConsoleMemory()
    raw = {"day_start_ms": T0 - 3_600_000, "at_ms": T0,
           "till_by_store": [{"store_id": "S001", "count": 3, "fen": 3000, "sv_count": 1, "sv_fen": 700},
                             {"store_id": "S002", "count": 1, "fen": 500, "sv_count": 0, "sv_fen": 0}],
           "orders": [{"status": "paid", "kind": "pickup", "count": 2, "fen": 4000, "sv_count": 1, "sv_fen": 1500},
                      {"status": "delivered", "kind": "delivery", "count": 1, "fen": 1000, "sv_count": 0, "sv_fen": 0},
                      {"status": "reserved", "kind": "flash", "count": 5, "fen": 5000, "sv_count": 0, "sv_fen": 0},
                      {"status": "expired", "kind": "pickup", "count": 1, "fen": 900, "sv_count": 0, "sv_fen": 0},
                      {"status": "paid", "kind": "flash", "count": 1, "fen": 100, "sv_count": 0, "sv_fen": 0}],
           "online_by_store": [{"store_id": "S002", "count": 2, "fen": 4000},
                               {"store_id": "(flash)", "count": 1, "fen": 100},
                               {"store_id": "S003", "count": 1, "fen": 1000}],
           "shrinkage": [{"reason": "spoiled", "sku": "EGG", "events": 2, "qty": 3},
                         {"reason": "theft", "sku": "EGG", "events": 1, "qty": 9}],
           "prices": {"EGG": {"unit": "piece", "price_fen": 100}},
           "topups": {"count": 2, "fen": 20_000},
           "flash": [{"sale_id": "F1", "sku": "EGG", "quantity": 100, "sold": 10, "remaining": 90, "leased": 5,
                      "rate_per_s": 50, "price_fen": 100, "starts_ms": T0 - 1000, "ends_ms": T0 + 60_000},
                     {"sale_id": "F0", "sku": "MILK", "quantity": 5, "sold": 5, "remaining": 0, "leased": 0,
                      "rate_per_s": 50, "price_fen": 100, "starts_ms": T0 - 9000, "ends_ms": T0 + 60_000}],
           "flash_throttled_total": 40.0}
    b = build_snapshot(inputs(T0, business=raw), memory, CFG)["business"]
    assert b["sales"] == {"till": {"count": 4, "fen": 3500}, "online": {"count": 4, "fen": 5100}, "total_fen": 8600}
    assert [(r["store_id"], r["till_fen"], r["online_fen"], r["total_fen"]) for r in b["by_store"]] == [
        ("S002", 500, 4000, 4500), ("S001", 3000, 0, 3000), ("S003", 0, 1000, 1000), ("(flash)", 0, 100, 100)]
    assert b["orders_by_status"] == [{"status": "reserved", "count": 5}, {"status": "paid", "count": 3},
                                     {"status": "delivered", "count": 1}, {"status": "expired", "count": 1}]
    assert b["members"] == {"topups": {"count": 2, "fen": 20_000}, "stored_value_spent": {
        "till": {"count": 1, "fen": 700}, "online": {"count": 1, "fen": 1500}, "fen": 2200}}
    assert [r["reason"] for r in b["shrinkage"]] == ["theft", "spoiled"]
    assert [(f["sale_id"], f["live"]) for f in b["flash"]] == [("F1", True), ("F0", False)]
    raw = {**raw, "at_ms": T0 + 2000, "flash_throttled_total": 60.0,
           "flash": [{**raw["flash"][0], "sold": 30, "remaining": 70}]}
    b = build_snapshot(inputs(T0 + 2000, business=raw), memory, CFG)["business"]
    assert b["flash"][0]["sold_per_s"] == 10.0 and b["throttled_per_s"] == 10.0


def test_local_day_starts_at_the_chains_midnight():
    # 2027-01-15 01:30 in UTC+8 is 2027-01-14 17:30 UTC; the local day began 2027-01-14 16:00 UTC
    import datetime as dt
    now = int(dt.datetime(2027, 1, 14, 17, 30, tzinfo=dt.UTC).timestamp() * 1000)
    start = int(dt.datetime(2027, 1, 14, 16, 0, tzinfo=dt.UTC).timestamp() * 1000)
    assert local_day_start_ms(now, 480) == start
    assert local_day_start_ms(start, 480) == start and local_day_start_ms(start - 1, 480) == start - 86_400_000
    assert local_day_start_ms(now, 0) == int(dt.datetime(2027, 1, 14, tzinfo=dt.UTC).timestamp() * 1000)


def test_config_from_the_environment_with_clear_errors():
    cfg = ConsoleConfig.from_env({"FRESHMESH_CONSOLE_OFFLINE_ALERT_S": "5", "FRESHMESH_CONSOLE_LAG_ALERT_MS": "2000"})
    assert (cfg.offline_alert_s, cfg.lag_alert_ms, cfg.tick_s) == (5.0, 2000, 1.0)
    with pytest.raises(ValueError, match="FRESHMESH_CONSOLE_LAG_ALERT_MS='fast'"):
        ConsoleConfig.from_env({"FRESHMESH_CONSOLE_LAG_ALERT_MS": "fast"})
    with pytest.raises(ValueError, match="tick_s must be positive"):
        ConsoleConfig(tick_s=0)


def test_memory_forgets_actors_and_sales_that_are_gone_but_not_on_a_failed_read():
    memory = ConsoleMemory()
    gate = actor("p-flash_sale-F1", restarts=0)
    build_snapshot(inputs(T0, [actor("p-stock_pool-0"), gate], {n: stats(commands=5) for n in
                                                                ("p-stock_pool-0", "p-flash_sale-F1")}), memory, CFG)
    build_snapshot(ConsoleInputs(now_ms=T0 + 1000, prefix="p-", actors=None, errors={"Ray actor table": "down"}),
                   memory, CFG)
    assert set(memory.restarts) == {"p-stock_pool-0", "p-flash_sale-F1"}, "a failed read forgets nothing"
    build_snapshot(inputs(T0 + 2000, [actor("p-stock_pool-0")], {"p-stock_pool-0": stats(commands=9)}), memory, CFG)
    assert set(memory.restarts) == {"p-stock_pool-0"} and "actor:p-flash_sale-F1" not in memory.rates


def test_an_audit_that_did_not_cover_every_actor_is_not_a_pass():
    ok = {"at_ms": T0, "asked": 3, "actors": 3, "violations": [], "unanswered": []}
    snap = build_snapshot(inputs(T0, audit=ok, stores={}), ConsoleMemory(), CFG)
    assert (snap["audit"]["status"], snap["audit"]["ok"]) == ("ok", True) and not snap["alerts"]
    # two actors timed out (or were gone): only one audited, nothing found, yet nothing is known about the others
    partial = {**ok, "actors": 1, "unanswered": ["p-stock_pool-1: TimeoutError", "p-member_ledger-0: not running"]}
    snap = build_snapshot(inputs(T0, audit=partial, stores={}), ConsoleMemory(), CFG)
    assert (snap["audit"]["status"], snap["audit"]["ok"]) == ("incomplete", False)
    alert = next(a for a in snap["alerts"] if a["kind"] == "audit_incomplete")
    assert "2 of 3" in alert["message"] and "p-stock_pool-1: TimeoutError" in alert["message"]
    # no actor answered at all (or none to ask): not "all invariants hold" either
    for empty in ({**ok, "actors": 0, "asked": 0}, {**ok, "actors": 0, "unanswered": ["a: TimeoutError"] * 3}):
        snap = build_snapshot(inputs(T0, audit=empty, stores={}), ConsoleMemory(), CFG)
        assert not snap["audit"]["ok"] and ("audit_incomplete", "invariants") in kinds(snap), empty
    failed = {"at_ms": T0, "error": "TimeoutError: ", "violations": []}
    snap = build_snapshot(inputs(T0, audit=failed, stores={}, errors={"invariant audit": "TimeoutError: "}),
                          ConsoleMemory(), CFG)
    assert snap["audit"]["status"] == "error" and ("source", "invariant audit") in kinds(snap)


def test_an_actor_that_cannot_start_or_stays_not_ready_is_red():
    memory = ConsoleMemory()
    name = "p-stock_pool-0"
    rebuilding = stats(ready=False)

    def row(now, st, pid=100):
        snap = build_snapshot(inputs(now, [actor(name, pid=pid)], {name: st}, stores={}), memory, CFG)
        return snap["actors"][0], kinds(snap)

    first, alerts = row(T0, rebuilding)
    assert (first["health"], first["bad"], first["ready"]) == ("starting", False, False) and not alerts
    stuck, alerts = row(T0 + 10_500, rebuilding)  # the default not-ready threshold is 10 s
    assert (stuck["health"], stuck["bad"], stuck["not_ready_s"]) == ("not_ready", True, 10.5)
    assert ("actor_not_ready", name) in alerts
    ready, alerts = row(T0 + 11_000, stats())
    assert (ready["health"], ready["bad"]) == ("ok", False) and not alerts and name not in memory.not_ready
    # a new incarnation (another pid) that is not ready starts its own clock
    row(T0 + 20_000, rebuilding, pid=101)
    again, _ = row(T0 + 25_000, rebuilding, pid=101)
    assert again["health"] == "starting"
    # a failed start never heals in that incarnation: red at once, with the reason as its last error
    failed, alerts = row(T0 + 26_000, stats(ready=False, start_error="start failed: OSError: no route",
                                           last_error="start failed: OSError: no route"), pid=102)
    assert (failed["health"], failed["bad"], failed["last_error"]) == ("start_failed", True,
                                                                      "start failed: OSError: no route")
    alert = next(a for a in build_snapshot(inputs(T0 + 26_000, [actor(name, pid=102)], {name: stats(
        ready=False, start_error="start failed: OSError: no route")}, stores={}), memory, CFG)["alerts"])
    assert alert["id"] == f"actor_not_ready:{name}" and "OSError: no route" in alert["message"]


def test_stores_never_seen_alert_once_the_registry_has_been_up_past_the_offline_threshold():
    memory = ConsoleMemory()
    registry_actor = actor("p-store_registry", pid=300)
    seen = [registry_row("S001", T0)]

    def snap(now, reg=seen, actors=(registry_actor,)):
        return build_snapshot(inputs(now, list(actors), {"p-store_registry": stats()}, registry=reg,
                                     stores={"S001": "One", "S002": "Two"}), memory, CFG)

    early = snap(T0)
    s2 = next(s for s in early["stores"] if s["store_id"] == "S002")
    assert (s2["status"], s2["missing"], s2["unseen_for_s"]) == ("never_seen", False, 0.0)
    assert ("store_never_seen", "S002") not in kinds(early), "just started: its heartbeats may still come"
    late = snap(T0 + 31_000)
    assert ("store_never_seen", "S002") in kinds(late) and ("store_never_seen", "S001") not in kinds(late)
    assert next(s for s in late["stores"] if s["store_id"] == "S002")["missing"]
    # the registry restarted (soft state lost): every store gets the threshold again before it is called missing
    restarted = actor("p-store_registry", pid=301, restarts=1)
    fresh = snap(T0 + 40_000, reg=[], actors=(restarted,))
    assert not {k for k in kinds(fresh) if k[0] == "store_never_seen"}
    assert ("store_never_seen", "S001") in kinds(snap(T0 + 71_000, reg=[], actors=(restarted,)))
    # an unreadable actor table is not a restart; an unreadable registry says "unknown", not "missing"
    assert ("store_never_seen", "S002") in kinds(build_snapshot(
        ConsoleInputs(now_ms=T0 + 72_000, prefix="p-", actors=None, registry=[], stores={"S002": "Two"}), memory, CFG))
    unreadable = inputs(T0 + 73_000, [restarted], {"p-store_registry": {"error": "TimeoutError"}},
                        stores={"S001": "One", "S002": "Two"}, errors={"store registry": "TimeoutError"})
    unreadable.registry = None
    unknown = build_snapshot(unreadable, memory, CFG)
    assert unknown["stores"][0]["status"] == "unknown" and not {k for k in kinds(unknown) if k[0] == "store_never_seen"}


def test_shrinkage_is_valued_at_list_price_per_piece_and_per_kg():
    raw = {"at_ms": T0, "day_start_ms": T0 - 1000,
           "shrinkage": [{"reason": "spoiled", "sku": "EGG", "events": 2, "qty": 3},        # 3 pieces at 1.50
                         {"reason": "spoiled", "sku": "PORK", "events": 1, "qty": 1250},    # 1250 g at 30.00/kg
                         {"reason": "theft", "sku": "EGG", "events": 1, "qty": 1},
                         {"reason": "theft", "sku": "GONE", "events": 4, "qty": 500}],      # not in the catalogue
           "prices": {"EGG": {"unit": "piece", "price_fen": 150}, "PORK": {"unit": "kg", "price_fen": 3000}}}
    b = build_snapshot(inputs(T0, business=raw, stores={}), ConsoleMemory(), CFG)["business"]
    assert b["shrinkage"] == [
        {"reason": "spoiled", "events": 3, "value_fen": 450 + 3750, "unpriced_events": 0},
        {"reason": "theft", "events": 5, "value_fen": 150, "unpriced_events": 4}]


def test_flash_rates_are_timed_by_when_the_figures_were_read_not_by_the_tick():
    memory = ConsoleMemory()
    sale = {"sale_id": "F1", "sku": "EGG", "quantity": 1000, "sold": 0, "remaining": 1000, "leased": 0,
            "rate_per_s": 50, "price_fen": 100, "starts_ms": T0 - 1000, "ends_ms": T0 + 600_000}
    rates = []
    # figures refreshed every 5 s (50 sold per refresh: 10/s), looked at every 1 s tick
    for tick in range(16):
        now = T0 + tick * 1000
        read = T0 + (tick // 5) * 5000
        # the queries before the counters took 0 or 400 ms: the rate is timed by the counters' own reading
        raw = {"at_ms": read - 400 * (tick // 5 % 2), "rates_at_ms": read, "day_start_ms": T0 - 1000,
               "flash": [{**sale, "sold": (read - T0) // 100}],
               "flash_throttled_total": float((read - T0) // 250)}
        b = build_snapshot(inputs(now, business=raw, stores={}), memory, CFG)["business"]
        rates.append((b["flash"][0]["sold_per_s"], b["throttled_per_s"]))
    assert rates[:5] == [(None, None)] * 5, "one reading is no rate"
    assert set(rates[5:]) == {(10.0, 4.0)}, rates


def test_the_snapshot_names_the_chains_time_zone():
    snap = build_snapshot(inputs(T0, stores={}), ConsoleMemory(), CFG)
    assert snap["timezone"] == {"utc_offset_minutes": 480, "name": "UTC+08:00"}
    other = build_snapshot(ConsoleInputs(now_ms=T0, utc_offset_minutes=-330), ConsoleMemory(), CFG)
    assert other["timezone"]["name"] == "UTC-05:30"


def test_the_cloud_prints_no_password_and_keeps_a_made_up_one_owner_only(tmp_path):
    import stat

    from cloud.main import keep_admin_password, startup_lines
    kept = keep_admin_password(tmp_path / "state", "f00d-f00d-f00d")
    assert kept.read_text().strip() == "f00d-f00d-f00d"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    made_up = "\n".join(startup_lines(8080, admin_created=True, password_file=kept))
    assert "Operator console: http://127.0.0.1:8080/console" in made_up
    assert "username admin" in made_up and str(kept) in made_up and "f00d" not in made_up
    configured = "\n".join(startup_lines(8080, admin_created=True, password_file=None))
    assert "password from FRESHMESH_ADMIN_PASSWORD" in configured and "token" not in configured
    later = "\n".join(startup_lines(8080, admin_created=False, password_file=None))
    assert "password" not in later and "freshmesh operators add" in later
    assert all("OPERATOR_TOKEN" not in text for text in (made_up, configured, later))


def test_an_actor_hosts_failed_start_is_its_reported_last_error():
    import asyncio
    import types

    from cloud.runtime.hosting import ActorHost

    class Unreachable:  # a DurableHost whose start (pool, migrations, rebuild) fails: PostgreSQL unreachable
        seq, _queue, stats = 0, [], {"errors": 0, "last_error": ""}

        async def start(self):
            raise OSError("connection refused")

    async def ask_twice():
        host = types.SimpleNamespace(name="p-stock_pool-0", kind="stock_pool", host=Unreachable(), _started=None,
                                     restarts=True)
        stats = ActorHost.__ray_actor_class__.stats  # the plain method, no Ray needed
        first = await stats(host)  # starts the rebuild: not ready yet, nothing failed yet
        await asyncio.sleep(0)
        return first, await stats(host)

    first, second = asyncio.run(ask_twice())
    assert (first["ready"], "start_error" in first) == (False, False)
    assert second["ready"] is False
    assert second["start_error"] == second["last_error"] == "start failed: OSError: connection refused"


def test_refused_store_events_per_store_and_newest_with_reasons():
    from cloud.console.snapshot import refused_view
    view = refused_view(
        [{"store_id": "S002", "count": 1, "last_ms": T0}, {"store_id": "S007", "count": 3, "last_ms": T0 + 5}],
        [{"store_id": "S007", "subject": "fm.store.S007.evt.pickup.completed", "reason": "not allocated",
          "raw_bytes": 90, "at_ms": T0 + 5}])
    assert view["total"] == 4 and [r["store_id"] for r in view["by_store"]] == ["S007", "S002"]
    assert view["recent"][0]["kind"] == "pickup.completed" and view["recent"][0]["reason"] == "not allocated"
