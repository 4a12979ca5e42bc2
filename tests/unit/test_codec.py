"""The wire contract: every message round-trips; no byte sequence makes decode() raise anything but ProtocolError."""
from __future__ import annotations

import dataclasses
import typing

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol import ProtocolError, codec
from protocol.coupons import new_code
from protocol.messages import ALL_MESSAGES, Payment, Quantity, SaleCommitted, SaleLine, StockMoved
from protocol.receiving_messages import GoodsReceived, ShrinkageRecorded
from protocol.return_messages import GoodsReturned
from protocol.schema import field_hints
from protocol.stocktake_messages import StocktakePosted

ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ids = st.text(ID_ALPHABET, min_size=26, max_size=26).filter(lambda s: s[0] in "01234567")
store_ids = st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True)
skus = st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True)
ints = st.integers(-(2**63), 2**63 - 1)
naturals = st.integers(0, 2**40)

OVERRIDES = {"event_id": ids, "store_id": store_ids, "sku": skus, "seq": naturals, "wall_ms": naturals,
             "qty": st.integers(1, 10**6), "delta": st.integers(-10**6, 10**6).filter(bool),
             "amount_fen": st.integers(1, 10**7), "request_event_id": ids, "amount": st.integers(1, 10**6),
             "lane": st.from_regex(r"[A-Za-z0-9_-]{1,16}", fullmatch=True), "hold_id": ids.map(lambda i: f"hold:{i}"),
             "points_hold_id": ids.map(lambda i: f"ptshold:{i}"), "hold_points": st.integers(1, 10**6),
             "topup_id": ids, "shift_id": ids, "cashier_id": st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True),
             "member_id": st.from_regex(r"[A-Za-z0-9]{1,40}", fullmatch=True),
             # a picked line (order.picked): counts that are never negative, and a substitute sku with its qty
             "ordered": st.integers(1, 10**6), "picked": st.integers(0, 10**6), "short": st.integers(0, 10**6),
             "substitute_sku": st.just(""), "substitute_qty": st.just(0),
             # escrow borrows and allocations (protocol/escrow_messages.py)
             "borrow_id": ids, "grant_event_id": ids, "asked": naturals, "lent": naturals, "key": skus,
             "ratio_bp": st.integers(0, 10_000), "version": st.integers(1, 2**40), "min_qty": st.integers(0, 1),
             # transfers between stores (protocol/transfer_messages.py)
             "transfer_id": ids, "from_store": store_ids, "to_store": store_ids,
             "lot": st.from_regex(r"[A-Za-z0-9_./-]{0,40}", fullmatch=True), "use_by": st.sampled_from(["", "2026-12-01"]),
             **{who: st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True)
                for who in ("requested_by", "dispatched_by", "received_by")},
             # restock (protocol.restock_messages): a target at or above its point, an alert's projection below it
             "alert_id": ids, "reorder_point": st.integers(1, 10**3), "target": st.integers(10**3, 10**6),
             "on_hand": st.integers(-10, 10**3), "owed": st.integers(0, 10**3), "suggested_qty": st.integers(0, 10**6)}


def strategy_for(hint, name=""):
    if name in OVERRIDES:
        return OVERRIDES[name]
    origin = typing.get_origin(hint)
    if hint is int:
        return ints
    if hint is str:  # text as it is (no control characters: those are refused, tested below)
        return st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
    if hint is bool:
        return st.booleans()
    if hint is bytes:
        return st.binary(max_size=64)
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(hint))
    if origin in (typing.Union, __import__("types").UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return st.none() | strategy_for(inner, name)
    if origin is tuple:
        return st.lists(strategy_for(typing.get_args(hint)[0]), min_size=1, max_size=4).map(tuple)
    if dataclasses.is_dataclass(hint):
        return records(hint)
    raise TypeError(hint)


def records(cls):
    fields = {name: strategy_for(hint, name) for name, hint in field_hints(cls)}
    return st.fixed_dictionaries(fields)


@st.composite
def messages(draw, cls):
    body = draw(records(cls))
    if cls is SaleCommitted:  # payments must add up to the total
        body["total_fen"] = sum(p["amount_fen"] for p in body["payments"])
        body["markdowns"] = draw(st.sampled_from([(), ({"rule_id": "MD-1", "line": 0, "sku": body["lines"][0]["sku"],
                                                        "saving_fen": 150, "lot": "L1"},)]))
        body["promotions"] = tuple({"rule_id": f"R{n}", "saving_fen": draw(st.integers(0, 10**6))}
                                   for n in range(draw(st.integers(0, 3))))  # each rule once
    if cls is StockMoved:  # its lots add up to its delta, in lots of their own names
        body["lots"] = draw(st.sampled_from([(), ({"lot": "", "delta": body["delta"], "use_by": ""},),
                                             ({"lot": "L-1", "delta": body["delta"], "use_by": "2026-12-01"},)]))
    if cls is GoodsReturned:  # a till sale's return (its refunds add up) or an order's (the cloud refunds)
        body["return_id"] = draw(ids)
        body["total_fen"] = sum(line["amount_fen"] for line in body["lines"])
        body["deductions"] = ()  # a kept gift's deduction: test_return_promotions builds real ones
        if draw(st.booleans()):
            body["order_id"], body["refunds"] = body["sale_id"] or "O1", ()
            body["sale_id"] = ""
        else:
            body["order_id"], body["sale_id"] = "", body["sale_id"] or "S1"
            body["refunds"] = ({**body["refunds"][0], "amount_fen": body["total_fen"]},)
    if cls is GoodsReceived:  # a note of named lots, each (sku, lot) once
        body |= {"receiving_id": draw(ids), "supplier": "Green Farm", "note_no": "DN-1", "received_by": "c1",
                 "lines": tuple({"sku": line["sku"], "lot": f"L{n}", "use_by": draw(st.sampled_from(["", "2026-12-01"])),
                                 "qty": draw(st.integers(0, 10**6)), "expected_qty": draw(st.integers(1, 10**6)),
                                 "unit_cost_fen": draw(st.integers(0, 10**6))} for n, line in enumerate(body["lines"]))}
    if cls is ShrinkageRecorded:
        body |= {"shrinkage_id": draw(ids), "movement_event_id": draw(ids), "reason": "spoiled",
                 "lot": draw(st.sampled_from(["", "L-1"])), "recorded_by": "c1", "note": "dropped"}
    if cls is StocktakePosted:  # a stocktake's lines: counted - book = variance, once per (sku, lot)
        names = st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True)
        body.update(stocktake_id=draw(ids), scope=draw(st.sampled_from(["all", "categories:eggs", "skus:A,B"])),
                    opened_by=draw(names), approved_by=draw(names), uncounted=draw(st.integers(0, 100)),
                    zero_uncounted=False)
        counts = draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(-10**6, 10**6)), min_size=0, max_size=3))
        body["lines"] = tuple({"sku": f"SKU{i}", "lot": draw(st.sampled_from(["", "L-1"])), "unit": "piece",
                               "counted": c, "book": b, "variance": c - b, "unit_cost_fen": 100, "price_fen": 300,
                               "counted_by": draw(names)} for i, (c, b) in enumerate(counts))
    if cls.KIND in ("coupon.hold", "coupon.release", "coupon.redeemed"):  # a well-formed coupon code; online names its hold
        body["code"] = new_code(lambda bits: draw(st.integers(0, 2**bits - 1)))
        if cls.KIND == "coupon.redeemed":
            body |= {"hold_id": "" if body["offline"] else "1:hold", "sale_id": draw(ids),
                     "saving_fen": draw(st.integers(0, 10**6))}
    if cls.KIND == "budget.used":  # each capped rule once, each use worth something
        body["uses"] = tuple({"rule_id": f"R{n}", "fen": draw(st.integers(1, 10**6))}
                             for n in range(draw(st.integers(1, 3))))
        body["member_uses"] = tuple({"rule_id": f"L{n}", "per_member_limit": draw(st.integers(1, 5))}
                                    for n in range(draw(st.integers(0, 2))))
        body["member_id"] = draw(st.sampled_from(("", "M1"))) if not body["member_uses"] else "M1"
    if cls.KIND == "budget.member_limits_answer":  # each rule once, by a rule id (random ones rarely are)
        body["uses"] = tuple({"rule_id": f"L{n}", "uses": draw(st.integers(0, 5))} for n in range(draw(st.integers(0, 3))))
    if cls.KIND == "budget.allowance":  # a rule id, a grant and a generation in range (random ones rarely are)
        body |= {"rule_id": f"R{draw(st.integers(0, 9999)):04d}", "granted_fen": draw(st.integers(0, 10**7)),
                 "generation": draw(st.integers(0, 10**6))}
    if cls.KIND == "budget.reclaimed":  # one of the reasons a share is taken back
        body["reason"] = draw(st.sampled_from(("ended", "withdrawn", "changed", "idle")))
    if cls.KIND.startswith("member.register"):  # an id of its own; a phone number the cloud can register
        body["register_id"] = draw(ids)
    if cls.KIND == "member.register":
        body["phone"] = draw(st.sampled_from(("13800138000", "+86 138 0013 8000", "+44 20 7946 0958")))
    if cls.KIND == "shift.reported":  # a count by denomination, cash among the methods, its difference adding up
        counted = tuple({"denomination_fen": d, "pieces": draw(st.integers(0, 50))} for d in (10_000, 100, 10))
        cash, expected = sum(c["denomination_fen"] * c["pieces"] for c in counted), draw(st.integers(-10**6, 10**6))
        body |= {"shift_id": draw(ids), "cashier_id": "c1", "lane": "1", "opened_ms": 1, "closed_ms": 2,
                 "float_fen": draw(st.integers(0, 10**6)), "counted": counted, "difference_fen": cash - expected,
                 "methods": ({"method": "cash", "expected_fen": expected, "counted_fen": cash},
                             {"method": "stored_value", "expected_fen": 500, "counted_fen": 500}),
                 "sales": draw(st.integers(0, 100)), "returns": 0, "voids": 1}
    try:
        return codec.decode(msgpack.packb({**body, "kind": cls.KIND, "schema_version": cls.SCHEMA_VERSION}))
    except ProtocolError:
        assume(False)


@pytest.mark.parametrize("kind", sorted(ALL_MESSAGES))
@settings(max_examples=60, deadline=None,  # a busy box may take 200 ms for one example: correctness, not speed
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_round_trips(kind, data):
    message = data.draw(messages(ALL_MESSAGES[kind]))
    frame = codec.encode(message)
    assert codec.decode(frame) == message
    assert message.kind == kind and message.schema_version == ALL_MESSAGES[kind].SCHEMA_VERSION


def valid_sale() -> SaleCommitted:
    return SaleCommitted(
        event_id="01KDVDNA000000000000000C1S", store_id="S001", seq=7, wall_ms=1_767_225_600_000, mono_ms=5,
        sale_id="01KDVDNA000000000000000C1T", lane="1",
        lines=(SaleLine(sku="APPLE-FUJI", quantity=Quantity.grams(500), amount_fen=650),),
        total_fen=650, payments=(Payment(method="cash", amount_fen=650, reference=""),),
        member_id=None, offline=False,
    )


def tamper(**changes) -> bytes:
    body = msgpack.unpackb(codec.encode(valid_sale()))
    body.update(changes)
    return msgpack.packb(body)


@pytest.mark.parametrize("frame, words", [
    (b"", "empty frame"),
    (b"\xc1", "not a valid msgpack frame"),
    (codec.encode(valid_sale())[:-3], "not a valid msgpack frame"),
    (codec.encode(valid_sale()) + b"\x00", "trailing bytes"),
    (msgpack.packb([1, 2, 3]), "frame must be a map"),
    (msgpack.packb({1: 2}), "not a valid msgpack frame"),  # strict_map_key
    (msgpack.packb({"kind": "nope", "schema_version": 1}), "unknown message kind 'nope'"),
    (tamper(schema_version=1), "schema_version 1 is not supported (this build reads 2)"),  # qty + weighed lines
    (tamper(schema_version="1"), "non-integer schema_version"),
    (tamper(seq=True), "sale.committed.seq: expected an integer, got bool"),
    (tamper(seq="7"), "sale.committed.seq: expected an integer, got str"),
    (tamper(extra=1), "unknown field(s) ['extra']"),
    (tamper(total_fen=651), "payments 650 fen != total 651 fen"),
    (tamper(store_id="S 1"), "invalid store id"),
    (tamper(lines=[{"sku": "A", "quantity": {"amount": 0, "unit": "piece"}, "amount_fen": 1}]), "amount must be positive"),
    (tamper(lines=[{"sku": "A", "quantity": {"amount": 5, "unit": "kg"}, "amount_fen": 1}]), "'kg' is not one of"),
    (tamper(lines=[{"sku": "A", "qty": 1, "weighed": False, "amount_fen": 1}]), "unknown field(s) ['qty', 'weighed']"),
    (tamper(lines=[[[[[[[[1]]]]]]]]), "nested deeper than"),
    (tamper(payments=[{"method": "bitcoin", "amount_fen": 650, "reference": ""}]), "'bitcoin' is not one of"),
    (msgpack.packb({"kind": "sale.committed", "schema_version": 1, "x": msgpack.ExtType(5, b"abc")}),
     "not a valid msgpack frame"),
    (b"\xa3\xff\xfe\xfd", "not a valid msgpack frame"),  # a str with invalid UTF-8
    (b"\x81\xa4kind" + b"\xdb" + (2**31).to_bytes(4, "big"), "not a valid msgpack frame"),  # absurd length
])
def test_bad_frames_say_what_was_wrong(frame, words):
    with pytest.raises(ProtocolError) as err:
        codec.decode(frame)
    assert words in str(err.value)


def test_missing_field_is_named():
    body = msgpack.unpackb(codec.encode(valid_sale()))
    del body["lane"]
    with pytest.raises(ProtocolError, match=r"sale.committed.lane: missing"):
        codec.decode(msgpack.packb(body))


@pytest.mark.parametrize("lane, words", [
    ("1\x00", "control character '\\x00' at position 1"),
    ("L" * 17, "sale.committed.lane: a lane is 1-16 letters"),
    ("1 2", "sale.committed.lane: a lane is 1-16 letters"),
    ("", "sale.committed.lane: a lane is 1-16 letters"),
])
def test_what_the_cloud_cannot_store_is_refused_by_the_codec_with_the_field(lane, words):
    body = msgpack.unpackb(codec.encode(valid_sale()))
    body["lane"] = lane
    with pytest.raises(ProtocolError) as err:
        codec.decode(msgpack.packb(body))
    assert words in str(err.value)
    with pytest.raises(ProtocolError):  # and the edge cannot make such a sale in the first place
        dataclasses.replace(valid_sale(), lane=lane)


def test_control_characters_are_refused_in_any_text_field_but_tab_and_newlines():
    body = msgpack.unpackb(codec.encode(valid_sale()))
    body["lines"][0]["sku"] = "APPLE\x1b[2J"
    with pytest.raises(ProtocolError, match=r"sale.committed.lines\[0\].sku: control character '\\x1b'"):
        codec.decode(msgpack.packb(body))
    move = msgpack.unpackb(codec.encode(StockMoved(
        event_id="01KDVDNA000000000000000C1S", store_id="S001", seq=1, wall_ms=0, mono_ms=0, sku="APPLE", delta=-3,
        reason="shrinkage", shrinkage_reason="spoiled", on_hand_after=5, reference="")))
    move["reference"] = "two\tcolumns\r\nand lines"
    assert codec.decode(msgpack.packb(move)).reference == "two\tcolumns\r\nand lines"


def test_oversized_frame_is_refused_before_parsing():
    with pytest.raises(ProtocolError, match="exceeds"):
        codec.decode(b"\x00" * (codec.MAX_FRAME_BYTES + 1))


def test_deeply_nested_msgpack_is_a_protocol_error():
    frame = b"\x91" * 100_000 + b"\x00"
    with pytest.raises(ProtocolError):
        codec.decode(frame)


def test_message_construction_checks_invariants():
    with pytest.raises(ProtocolError, match="shrinkage needs a shrinkage_reason"):
        StockMoved(event_id="01KDVDNA000000000000000C1S", store_id="S001", seq=1, wall_ms=0, mono_ms=0,
                   sku="APPLE", delta=-3, reason="shrinkage", shrinkage_reason="", on_hand_after=5, reference="")


@settings(max_examples=3000)
@given(st.binary(max_size=600))
def test_random_bytes_only_ever_raise_protocol_error(data):
    try:
        codec.decode(data)
    except ProtocolError:
        pass


@settings(max_examples=3000)
@given(st.data())
def test_mutated_valid_frames_only_ever_raise_protocol_error(data):
    frame = bytearray(codec.encode(valid_sale()))
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del frame[pos:pos + data.draw(st.integers(1, 16))]
        else:
            frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        decoded = codec.decode(bytes(frame))
    except ProtocolError:
        return
    assert decoded.KIND in ALL_MESSAGES  # a mutation may still be a valid message; then it must be well-formed
    assert codec.decode(codec.encode(decoded)) == decoded


def hold_request(**changes) -> bytes:
    body = {"event_id": "01J9Z8K6Q3X4V5W6Y7Z8A9B0C1", "store_id": "S001", "seq": 0, "wall_ms": 1, "mono_ms": 1,
            "hold_id": "hold:01J9Z8K6Q3X4V5W6Y7Z8A9B0C2", "member_id": "M1", "amount_fen": 1_825, "lane": "1",
            "kind": "stored_value.hold", "schema_version": 1, **changes}
    return msgpack.packb(body)


@pytest.mark.parametrize("changes, words", [
    ({"hold_id": "sv:S1"}, "stored_value.hold: not a hold id: 'sv:S1'"),
    ({"amount_fen": 0}, "stored_value.hold: amount_fen must be positive"),
    ({"member_id": ""}, "stored_value.hold.member_id: a member id is 1-64 characters"),
    ({"lane": "1\x00"}, "control character"),
    ({"granted": True}, "unknown field(s) ['granted']"),
])
def test_a_bad_hold_request_says_what_was_wrong(changes, words):
    assert codec.decode(hold_request()).amount_fen == 1_825
    with pytest.raises(ProtocolError) as err:
        codec.decode(hold_request(**changes))
    assert words in str(err.value)
