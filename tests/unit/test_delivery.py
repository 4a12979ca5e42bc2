"""Delivery decisions (protocol/delivery.py) and reading the rider platform's callbacks (cloud/services/riders.py),
without servers."""
from __future__ import annotations

import json

import pytest

from cloud.services.delivery_parts import part_lines, target_of
from cloud.services.riders import BadCallback, HttpRiderPlatform, callback_from_query, parse_callback
from protocol import delivery
from protocol.errors import ProtocolError

NOW_S = 1_790_000_000
APP_SECRET = "s3cret"  # a test app secret


class Clock:
    def now_ms(self) -> int:
        return NOW_S * 1000


def test_fee_is_charged_below_the_threshold_only():
    terms = delivery.Terms(fee_fen=500, free_from_fen=3900)
    assert terms.fee_for(3899) == 500
    assert terms.fee_for(3900) == 0 and terms.fee_for(10_000) == 0


def test_slot_cut_off_names_the_minutes():
    terms = delivery.Terms(cutoff_min=60)
    slot = 10 * 3_600_000
    assert terms.cutoff_problem(slot, slot - 60 * 60_000) is None
    why = terms.cutoff_problem(slot, slot - 30 * 60_000)
    assert why is not None and "60 min before" in why and "30 min ago" in why


def test_statuses_map_to_lifecycle_events_or_notes():
    assert delivery.lifecycle_event("picked_up") == "hand_to_rider"
    assert delivery.lifecycle_event("delivered") == "deliver"
    assert delivery.lifecycle_event("failed") == delivery.lifecycle_event("cancelled") == "fail_delivery"
    assert {delivery.lifecycle_event(s) for s in ("accepted", "arrived_at_store", "delivering")} == {"rider"}
    with pytest.raises(ProtocolError, match="unknown rider status"):
        delivery.lifecycle_event("teleported")


def test_one_redispatch_then_give_up():
    assert delivery.next_step_after_failure(1) == "redispatch"
    assert delivery.next_step_after_failure(2) == "give_up"


def test_phones_are_masked():
    assert delivery.mask_phone("13912345678") == "139****5678"
    assert delivery.mask_phone("+86 139 1234 5678") == "139****5678"
    assert delivery.mask_phone("12345") == "*****"


def _signed(body: bytes, secret: str = APP_SECRET, at_s: int = NOW_S, key: str = "app") -> dict:
    return delivery.signed_headers(key, secret, at_s, "n0nce", body)


@pytest.mark.parametrize(("headers", "words"), [
    ({}, "missing"),
    (_signed(b"{}", secret="other"), "does not verify"),
    (_signed(b"{}", at_s=NOW_S - 301), "-301 s away"),
    (_signed(b"{}", at_s=NOW_S + 301), "301 s away"),
    (_signed(b"{}", key="someone-else"), "not our app"),
    ({**_signed(b"{}"), delivery.TIMESTAMP_HEADER: "12x"}, "malformed"),
])
def test_signatures_refuse_what_is_not_ours_or_stale(headers, words):
    why = delivery.verify("app", "s3cret", headers, b"{}", NOW_S)
    assert why is not None and words in why


def test_a_signature_covers_the_body():
    headers = _signed(b'{"status":"picked_up"}')
    assert delivery.verify("app", "s3cret", headers, b'{"status":"picked_up"}', NOW_S + 299) is None
    assert delivery.verify("app", "s3cret", headers, b'{"status":"delivered"}', NOW_S) is not None


GOOD = {"callback_id": "cb1", "platform_order_id": "DD1", "origin_id": "O1", "attempt": 1, "status": "picked_up",
        "reason": "", "rider": {"name": "Li Na", "phone": "13787654321"}, "position": {"lat": 31.2, "lon": 121.4}}


def test_callbacks_are_read_after_their_signature():
    platform = HttpRiderPlatform("http://127.0.0.1:1", "app", "s3cret", "http://127.0.0.1:2/cb", Clock())
    raw = json.dumps(GOOD).encode()
    cb = platform.read_callback(_signed(raw), raw)
    assert (cb.origin_id, cb.attempt, cb.status, cb.rider_phone, cb.lat) == ("O1", 1, "picked_up", "13787654321", 31.2)
    with pytest.raises(BadCallback) as forged:
        platform.read_callback(_signed(raw, secret="guess"), raw)
    assert forged.value.status == 401
    bad = json.dumps({**GOOD, "attempt": "1"}).encode()
    with pytest.raises(BadCallback) as unreadable:
        platform.read_callback(_signed(bad), bad)
    assert unreadable.value.status == 400 and "attempt" in unreadable.value.detail


@pytest.mark.parametrize(("change", "words"), [
    ({"status": "lost"}, "unknown rider status"),
    ({"position": {"lat": 91, "lon": 0}}, "position"),
    ({"position": {"lat": 31.2}}, "position"),
    ({"callback_id": ""}, "callback_id"),
    ({"rider": "Li"}, "objects expected"),
])
def test_malformed_callbacks_name_the_field(change, words):
    with pytest.raises(ValueError, match=words):
        parse_callback({**GOOD, **change})


def test_delivered_or_on_the_way_while_ready_implies_the_pickup():
    # `picked_up` lost or overtaken: the goods left with the rider, so the order is handed over first
    assert delivery.implied_events("ready", "delivered") == ("hand_to_rider",)
    assert delivery.implied_events("ready", "delivering") == ("hand_to_rider",)
    assert delivery.implied_events("out_for_delivery", "delivered") == ()
    assert delivery.implied_events("ready", "failed") == ()  # no rider: from ready directly
    assert delivery.implied_events("delivered", "delivered") == ()


def test_a_query_answer_reads_as_a_callback_once_per_status():
    view = {"platform_order_id": "DD1", "origin_id": "O1", "attempt": 2, "status": "delivered", "reason": "",
            "fee_fen": 500, "distance_m": 900, "rider": {"name": "Wang", "phone": "13900000000"},
            "position": {"lat": 31.2, "lon": 121.4}, "platform": "simulated"}
    cb = callback_from_query(view)
    assert cb is not None and (cb.status, cb.attempt, cb.origin_id, cb.rider_name) == ("delivered", 2, "O1", "Wang")
    assert cb.callback_id == callback_from_query(view).callback_id  # the same answer twice: one timeline key
    assert callback_from_query({**view, "status": "created"}) is None  # nothing to tell yet
    assert callback_from_query({**view, "rider": None, "position": None}) is not None
    assert callback_from_query({**view, "attempt": "x"}) is None


def test_a_split_order_follows_its_parts_by_the_shortest_path():
    assert delivery.order_path("ready", "ready") == ()  # one part left with its rider, the other waits: no move
    assert delivery.order_path("ready", "out_for_delivery") == ("hand_to_rider",)
    assert delivery.order_path("ready", "delivered") == ("hand_to_rider", "deliver")
    assert delivery.order_path("out_for_delivery", "delivery_failed") == ("fail_delivery",)
    assert delivery.order_path("delivery_failed", "ready") == ("redispatch",)
    # one part refunded after failing twice, the other delivered: the order ends partially refunded
    assert delivery.order_path("delivery_failed", "partially_refunded") == ("refund_part",)
    assert delivery.order_path("out_for_delivery", "partially_refunded") == ("deliver", "refund_part")
    assert delivery.order_path("delivery_failed", "refunded") == ("refund",)
    assert delivery.order_path("delivered", "ready") == ()  # never backwards


def test_the_order_of_a_split_delivery_is_its_least_advanced_part():
    assert target_of(["out_for_delivery", "ready"]) == "ready"
    assert target_of(["delivered", "out_for_delivery"]) == "out_for_delivery"
    assert target_of(["delivered", "delivered"]) == "delivered"
    assert target_of(["refunded", "delivered"]) == "partially_refunded"
    assert target_of(["refunded", "out_for_delivery"]) == "out_for_delivery"
    assert target_of(["refunded", "refunded"]) == "refunded"
    lines = [{"sku": "A", "qty": 2, "amount_fen": 1000}, {"sku": "B", "qty": 1, "amount_fen": 300}]
    assert part_lines(lines, [{"sku": "A", "qty": 1}], False) == [{"sku": "A", "qty": 1, "amount_fen": 500}]
    assert part_lines(lines, [{"sku": "A", "qty": 2}], True) == lines
