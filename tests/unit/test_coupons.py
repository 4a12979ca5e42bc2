"""Coupons' pure core: codes (unguessable, typeable, checked), definitions (validated, errors naming the field),
issuing within limits, and the state machine's verdicts."""
from __future__ import annotations

import random
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import coupons as c
from protocol.errors import ProtocolError

DAY = c.DAY_MS


def code_from(seed: int) -> str:
    rng = random.Random(seed)
    return c.new_code(rng.getrandbits)


def test_codes_are_prefixed_plain_and_parse_back():
    code = c.new_code(secrets.randbits)
    assert code.startswith("CP") and len(code) == c.CODE_CHARS
    assert all(ch in c.ALPHABET for ch in code[2:])
    assert c.normalise(code) == code
    # forgiving input: case, spaces, hyphens, and Crockford's look-alikes
    spaced = f"{code[:5].lower()}-{code[5:10]} {code[10:]}"
    assert c.normalise(spaced) == code


def test_codes_from_the_csprng_do_not_repeat():
    codes = {c.new_code(secrets.randbits) for _ in range(5000)}
    assert len(codes) == 5000


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), pos=st.integers(2, c.CODE_CHARS - 1), delta=st.integers(1, 31))
def test_every_single_mistyped_character_is_caught(seed, pos, delta):
    code = code_from(seed)
    wrong = c.ALPHABET[(c.ALPHABET.index(code[pos]) + delta) % 32]
    typo = code[:pos] + wrong + code[pos + 1:]
    with pytest.raises(c.CouponCodeError, match="check character"):
        c.normalise(typo)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), pos=st.integers(2, c.CODE_CHARS - 2))
def test_every_swap_of_neighbours_is_caught(seed, pos):
    code = code_from(seed)
    if code[pos] == code[pos + 1]:
        return
    swapped = code[:pos] + code[pos + 1] + code[pos] + code[pos + 2:]
    with pytest.raises(c.CouponCodeError, match="check character"):
        c.normalise(swapped)


@pytest.mark.parametrize("text,why", [
    ("R0022", "starts with CP"),
    ("CP123", "has 5 characters"),
    ("CPUUUUUUUUUUUUU", "'U' is not used"),
    ("", "starts with CP"),
])
def test_garbled_codes_say_what_is_wrong(text, why):
    with pytest.raises(c.CouponCodeError, match=why):
        c.normalise(text)


def test_looks_like_code_tells_coupons_from_product_barcodes():
    assert c.looks_like_code(c.new_code(secrets.randbits))
    assert c.looks_like_code("CP123456789012")  # a mistyped coupon is still a coupon (refused as one)
    assert not c.looks_like_code("6901234567892")
    assert not c.looks_like_code("2012345000150")


DEF = {"definition_id": "D1", "rule_id": "R0022", "name": "10 off veg", "valid_days": 7}


def test_definition_defaults_and_validity():
    d = c.parse_definition(DEF)
    assert d.channels == ("offline", "online") and d.per_member_limit == 1 and d.total_limit == 0
    assert d.valid_until(1000) == 1000 + 7 * DAY
    both = c.parse_definition({**DEF, "valid_until_ms": 3 * DAY})
    assert both.valid_until(0) == 3 * DAY and both.valid_until(DAY) == 3 * DAY  # the earlier end wins


@pytest.mark.parametrize("change,field", [
    ({"definition_id": "bad id!"}, "definition_id"),
    ({"rule_id": ""}, "rule_id"),
    ({"valid_days": 0}, "valid_until_ms or valid_days"),
    ({"valid_days": -1}, "valid_days"),
    ({"channels": ["web"]}, "channels"),
    ({"channels": []}, "channels"),
    ({"per_member_limit": 0}, "per_member_limit"),
    ({"total_limit": True}, "total_limit"),
    ({"valid_from_ms": 5 * DAY, "valid_until_ms": 4 * DAY}, "valid_until_ms"),
    ({"trigger": {"kind": "till_spend", "min_fen": 0}}, "trigger.min_fen"),
    ({"trigger": {"kind": "birthday"}}, "trigger"),
    ({"channels": ["offline"], "trigger": {"kind": "till_spend", "min_fen": 5000, "channel_issued": "online"}},
     "trigger.channel_issued"),
    ({"on_registration": True, "trigger": {"kind": "till_spend", "min_fen": 5000}}, "trigger"),
    ({"colour": "red"}, "unknown field"),
    ({"points_price": -1}, "points_price"),
    ({"points_price": "600"}, "points_price"),
    ({"points_price": True}, "points_price"),
    ({"points_price": 1.5}, "points_price"),
    ({"points_price": c.POINTS_PRICE_MAX + 1}, "points_price"),
])
def test_definition_errors_name_the_field(change, field):
    with pytest.raises(ProtocolError) as exc:
        c.parse_definition({**DEF, **change})
    assert str(exc.value).startswith(field)


def test_definition_round_trips_through_json():
    d = c.parse_definition({**DEF, "channels": ["online"], "trigger": {"kind": "till_spend", "min_fen": 5000}})
    assert c.parse_definition(d.to_json()) == d


def test_a_points_price_is_kept_and_zero_means_not_sold():
    assert c.parse_definition(DEF).points_price == 0
    d = c.parse_definition({**DEF, "points_price": 600})
    assert d.points_price == 600 and c.parse_definition(d.to_json()) == d
    assert c.exchangeable(c.parse_definition(DEF), 0, 0, now_ms=0) == "coupon definition D1 is not sold for points"
    assert c.exchangeable(d, 0, 0, now_ms=0) is None and c.exchangeable(d, None, 0, now_ms=0) is None


@pytest.mark.parametrize("change,held,total,now,why", [
    ({"valid_from_ms": 5 * DAY, "valid_until_ms": 9 * DAY}, 0, 0, 4 * DAY, "not valid yet"),
    ({"valid_until_ms": 3 * DAY}, 0, 0, 3 * DAY, "ended"),
    ({"valid_until_ms": 3 * DAY}, None, 0, 3 * DAY, "ended"),
    ({"total_limit": 2}, 0, 2, 0, "the total limit of 2 coupons is reached"),
    ({"total_limit": 2}, None, 2, 0, "the total limit of 2 coupons is reached"),
    ({"per_member_limit": 2}, 2, 2, 0, "already holds 2 of this coupon (the per-member limit)"),
])
def test_what_points_cannot_buy_says_why(change, held, total, now, why):
    d = c.parse_definition({**DEF, "points_price": 600, **change})
    assert why in (c.exchangeable(d, held, total, now_ms=now) or "")


def test_the_shop_without_a_member_does_not_judge_the_per_member_limit():
    d = c.parse_definition({**DEF, "points_price": 600, "per_member_limit": 1, "total_limit": 5})
    assert c.exchangeable(d, None, 4, now_ms=0) is None and c.exchangeable(d, 1, 4, now_ms=0) is not None


def test_issue_plan_honours_limits_and_names_each_refusal():
    d = c.parse_definition({**DEF, "per_member_limit": 2, "total_limit": 4})
    issue, refused = c.issue_plan(d, ["a", "b", "c", "a", "d", "e"], {"b": 2, "c": 1}, 1, now_ms=0)
    assert issue == ["a", "c", "d"]
    assert refused == {"b": "already holds 2 of this coupon (the per-member limit)",
                       "e": "the total limit of 4 coupons is reached"}
    assert issue.count("a") == 1  # named twice: one coupon


def test_an_ended_definition_issues_nothing():
    d = c.parse_definition({**DEF, "valid_until_ms": 2 * DAY})
    issue, refused = c.issue_plan(d, ["a"], {}, 0, now_ms=2 * DAY)
    assert issue == [] and "ended" in refused["a"]


@settings(max_examples=200, deadline=None)
@given(members=st.lists(st.sampled_from("abcdefgh"), max_size=30), per=st.integers(1, 3), total=st.integers(0, 10),
       held=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 3)), before=st.integers(0, 12))
def test_issue_plan_never_exceeds_a_limit(members, per, total, held, before):
    d = c.parse_definition({**DEF, "per_member_limit": per, "total_limit": total})
    issue, refused = c.issue_plan(d, members, held, before, now_ms=0)
    assert set(issue) | set(refused) == set(members) and not set(issue) & set(refused)
    assert len(issue) == len(set(issue))
    for m in issue:
        assert held.get(m, 0) + 1 <= per
    if total:
        assert before + len(issue) <= max(total, before)


def coupon(**kw) -> c.Coupon:
    base = dict(code="CPX", definition_id="D1", member_id="m1", status="issued", valid_from_ms=100,
                valid_until_ms=1000, channels=("online",), stores=("S001",))
    return c.Coupon(**{**base, **kw})


@pytest.mark.parametrize("kw,args,why", [
    ({}, ("m1", "online", "S001", 500), None),
    ({}, ("m2", "online", "S001", 500), "no such coupon in your wallet"),
    ({"status": "redeemed"}, ("m1", "online", "S001", 500), "already redeemed"),
    ({"status": "reserved", "reserved_for": "o1"}, ("m1", "online", "S001", 500),
     "already reserved by another order or till"),
    ({}, ("m1", "offline", "S001", 500), "not valid at the till (valid online only)"),
    ({}, ("m1", "online", "S002", 500), "not valid at store S002"),
    ({}, ("m1", "online", "S001", 99), "not valid yet"),
    ({}, ("m1", "online", "S001", 1000), "expired"),
])
def test_redeemable_says_why_not(kw, args, why):
    assert c.redeemable(coupon(**kw), *args) == why


def test_a_coupon_reserved_for_this_order_is_still_its_own():
    held = coupon(status="reserved", reserved_for="o1")
    assert c.redeemable(held, "m1", "online", "S001", 500, holder="o1") is None
    assert c.redeemable(held, "m1", "online", "S001", 500, holder="o2") == "already reserved by another order or till"
    assert c.redeemable(None, "m1", "online", "S001", 500) == "no such coupon in your wallet"


def test_state_machine_steps():
    assert c.step("issued", "reserve") == "reserved"
    assert c.step("reserved", "release") == "issued"
    assert c.step("reserved", "redeem") == "redeemed"
    assert c.step("issued", "redeem_offline") == "redeemed"
    for status, name in [("redeemed", "reserve"), ("redeemed", "release"), ("issued", "redeem"),
                         ("reserved", "reserve"), ("redeemed", "redeem_offline")]:
        with pytest.raises(c.IllegalStep):
            c.step(status, name)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.sampled_from(sorted(c.STEPS)), max_size=12))
def test_a_redeemed_coupon_leaves_redeemed_only_by_its_order_s_return(steps):
    status = "issued"
    for name in steps:
        try:
            after = c.step(status, name)
        except c.IllegalStep:
            continue
        if status == "redeemed":
            assert name == "return" and after == "issued"
        status = after


def test_status_now_shows_expiry():
    assert c.status_now(coupon(), 999) == "issued"
    assert c.status_now(coupon(), 1000) == "expired"
    assert c.status_now(coupon(status="redeemed"), 5000) == "redeemed"
