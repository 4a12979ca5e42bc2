import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import ProtocolError
from protocol.clock import ManualClock
from protocol.ids import IdFactory, id_time_ms, is_id, make_id
from protocol.money import div_round, format_fen, parse_yuan, portion_fen, weighed_amount_fen


@pytest.mark.parametrize("weight_g, price, expected", [
    (500, 1299, 650),    # 649.5 fen -> rounds half up to 650
    (333, 1000, 333),    # exact
    (1, 1499, 1),        # 1.499 -> 1
    (1, 500, 1),         # 0.5 -> 1
    (1, 499, 0),         # 0.499 -> 0
    (1234, 2680, 3307),  # 3307.12 -> 3307
])
def test_weighed_amount_rounds_half_up_once(weight_g, price, expected):
    assert weighed_amount_fen(weight_g, price) == expected


def test_div_round_is_symmetric_away_from_zero():
    assert div_round(5, 10) == 1 and div_round(-5, 10) == -1
    assert div_round(4, 10) == 0 and div_round(-4, 10) == 0
    assert portion_fen(995, 1000) == 100  # 10% of 9.95 = 0.995 -> 1.00
    with pytest.raises(ValueError):
        div_round(1, 0)


@given(st.integers(-10**12, 10**12), st.integers(1, 10**6))
def test_div_round_is_within_half_of_exact(numerator, denominator):
    q = div_round(numerator, denominator)
    assert abs(q * denominator - numerator) * 2 <= denominator


def test_format_and_parse_yuan():
    assert format_fen(2350) == "23.50" and format_fen(-5) == "-0.05" and format_fen(0) == "0.00"
    assert parse_yuan("23.5") == 2350 and parse_yuan("0.05") == 5 and parse_yuan("-1.20") == -120
    for bad in ("1.234", "abc", "", "1,20"):
        with pytest.raises(ProtocolError):
            parse_yuan(bad)


def test_ids_are_time_ordered_and_strictly_increasing_within_a_millisecond():
    clock = ManualClock(now_ms=1_767_225_600_000)
    ids = IdFactory(clock.now_ms, lambda: 2**80 - 1)  # worst case: entropy at its maximum
    batch = [ids.new() for _ in range(1000)]
    assert batch == sorted(batch) and len(set(batch)) == 1000
    assert all(is_id(i) for i in batch)
    assert id_time_ms(batch[0]) == 1_767_225_600_000
    clock.advance(1)
    later = ids.new()
    assert later > batch[-1]


def test_ids_never_go_back_when_the_wall_clock_steps_back():
    now = [1_767_225_600_000]
    ids = IdFactory(lambda: now[0], lambda: 12345)
    first = ids.new()
    now[0] -= 60_000
    assert ids.new() > first


def test_ids_from_two_origins_do_not_collide():
    import random
    first, second = random.Random(1), random.Random(2)
    a = IdFactory(lambda: 1_000, lambda: first.getrandbits(80))
    b = IdFactory(lambda: 1_000, lambda: second.getrandbits(80))
    assert not {a.new() for _ in range(500)} & {b.new() for _ in range(500)}


def test_make_id_rejects_out_of_range_time_and_id_time_rejects_garbage():
    with pytest.raises(ValueError):
        make_id(-1, 0)
    with pytest.raises(ProtocolError):
        id_time_ms("not-an-id")
