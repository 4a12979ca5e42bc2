"""The money and trust defects a review of the till's money code found (issue 19), each as the attack or fault
that broke it: pure parts (no servers)."""
from __future__ import annotations

import pytest

from edge.core import selling
from edge.core.split_tender import Tender
from edge.till.counter_routes import FloatBody
from protocol.digits import is_whole_number
from protocol.errors import ProtocolError
from tests.unit.test_till_money import sale_of, split_pay


# 2. a split's stored-value part against a granted hold is captured, even if the box went offline meanwhile
def test_a_split_whose_hold_was_granted_is_not_an_offline_spend_when_the_box_went_offline_before_the_pay():
    hold = selling.Authorisation("hold:01KDVDNA000000000000000H11", "M1", 1_000, granted=True)
    sale = sale_of(split_pay(Tender("stored_value", 1_000), tendered=500, auth=hold, online=False))
    assert sale.payments[0].reference == hold.hold_id
    assert not sale.offline  # names the hold: the cloud captures it (an offline sale would be a Spend besides)


def test_a_split_paid_offline_without_a_hold_still_says_offline():
    sale = sale_of(split_pay(Tender("stored_value", 1_000), tendered=500, online=False))
    assert sale.offline and sale.payments[0].reference != ""


# 7. a float the shift could never close with is refused, naming the bound
def test_a_float_past_100000_yuan_is_refused_naming_the_bound():
    assert FloatBody(amount_fen=10_000_000).amount_fen == 10_000_000
    with pytest.raises(ProtocolError, match="0 to 100000.00 yuan"):
        FloatBody(amount_fen=10_000_000_000)


# 8. unicode digits are not whole numbers (int("²") raised: a 500)
@pytest.mark.parametrize("text", ["²", "①", "١٢", "", "-1", "1.0", " 1"])
def test_what_is_not_ascii_digits_is_not_a_whole_number(text):
    assert not is_whole_number(text)


def test_ascii_digits_are_a_whole_number_within_the_digits_allowed():
    assert is_whole_number("0") and is_whole_number("123456789", 9) and not is_whole_number("1234567890", 9)
