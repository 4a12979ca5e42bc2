"""The till's side of points (issue 17.5), pure: a member's sale carries a survey link signed with the store's
survey key (on the answer and on the receipt); a sale without a member, or a box without a key, carries none."""
from __future__ import annotations

import pytest

from edge.core import selling
from edge.core.outcome import PrintTicket, Refused
from edge.core.state import Member
from protocol.ids import make_id
from protocol.points import survey_key, token_parts, token_valid
from tests.unit.test_edge_core import BOOKS, NOW, STORE, cart_of, stamp

KEY = survey_key("the-stores-own-password", STORE)
MEMBER = Member("M1", "138****8000", "C1", "regular", 10_000, 0, 0)


def sell(cart, key: bytes | None = KEY):
    till = selling.Till(STORE, online=True, floor_limit_fen=5_000, survey_key=key,
                        survey_base_url="https://m.freshmesh.example/")
    sale_id = make_id(NOW.wall_ms, 777)
    return sale_id, selling.pay(cart, BOOKS, selling.PayRequest("1", "cash", 10**6), till, sale_id, {}, stamp())


def test_a_members_sale_carries_a_survey_link_the_cloud_can_verify_on_the_answer_and_the_receipt():
    sale_id, out = sell(cart_of("6901234567892", member=MEMBER))
    token = out.reply["survey_token"]
    assert token_parts(token)[:2] == (STORE, sale_id) and token_valid(KEY, token)
    assert out.reply["survey_url"] == f"https://m.freshmesh.example/surveys/{token}"
    printed = next(a for a in out.after if isinstance(a, PrintTicket)).ticket
    assert out.reply["survey_url"].encode() in printed


def test_a_sale_without_a_member_or_a_box_without_a_key_carries_no_survey():
    _, anonymous = sell(cart_of("6901234567892"))
    assert "survey_token" not in anonymous.reply and "survey_url" not in anonymous.reply
    assert b"/surveys/" not in next(a for a in anonymous.after if isinstance(a, PrintTicket)).ticket
    _, keyless = sell(cart_of("6901234567892", member=MEMBER), key=None)
    assert "survey_token" not in keyless.reply


RICH = Member("M1", "138****8000", "C1", "regular", 10_000, 5_000, 0)


def pay_with_points(cart, auth, method="cash", online=True, tendered=10**6):
    till = selling.Till(STORE, online=online, floor_limit_fen=5_000)
    sale_id = make_id(NOW.wall_ms, 778)
    return sale_id, selling.pay(cart, BOOKS, selling.PayRequest("1", method, tendered, None, auth), till, sale_id,
                                {}, stamp())


def sale_event(out):
    from edge.core.outcome import Publish
    from protocol.messages import SaleCommitted
    return next(e.event for e in out.effects if isinstance(e, Publish) and isinstance(e.event, SaleCommitted))


def test_points_pay_part_of_a_sale_against_the_clouds_hold_and_cash_the_rest():
    cart = cart_of(*["6901234567892"] * 4, member=RICH)  # 4 x 3.50 = 14.00
    hold = "ptshold:" + make_id(NOW.wall_ms, 5)
    _, out = pay_with_points(cart, selling.PointsAuth(700, hold, "M1", granted=True, answered=True), tendered=1_000)
    sale = sale_event(out)
    assert [(p.method, p.amount_fen, p.reference) for p in sale.payments] == [("points", 700, hold), ("cash", 700, "")]
    assert out.reply["change_fen"] == 300 and sale.total_fen == 1_400  # cash covers the rest only


def test_points_refused_past_the_share_past_the_hold_offline_past_the_allowance_and_with_stored_value():
    cart = cart_of(*["6901234567892"] * 4, member=RICH)
    for auth, method, status, words in (
            (selling.PointsAuth(701), "cash", 422, "50%"),
            (selling.PointsAuth(300, "ptshold:x", "M1", granted=False, answered=True,
                                reason="insufficient points: 300 asked, the member has 10"), "cash", 409, "insufficient"),
            (selling.PointsAuth(300), "stored_value", 422, "not stored value")):
        with pytest.raises(Refused, match=words) as refused:
            pay_with_points(cart, auth, method)
        assert refused.value.status == status
    poor = cart_of(*["6901234567892"] * 4, member=Member("M2", None, "C2", "regular", 0, 100, 0))
    with pytest.raises(Refused, match="points offline limit"):
        pay_with_points(poor, selling.PointsAuth(200), online=False)  # the member has 100 here
    with pytest.raises(Refused, match="points need a member"):
        pay_with_points(cart_of("6901234567892"), selling.PointsAuth(100))


def test_points_without_the_clouds_answer_are_paid_within_the_allowance_under_the_sales_own_reference():
    cart = cart_of(*["6901234567892"] * 4, member=RICH)
    sale_id, out = pay_with_points(cart, selling.PointsAuth(500), online=False)
    payments = sale_event(out).payments
    assert (payments[0].method, payments[0].amount_fen, payments[0].reference) == ("points", 500, f"pts:{sale_id}")


def test_offline_points_count_what_the_store_already_took_without_the_cloud():
    cart = cart_of(*["6901234567892"] * 10, member=RICH)  # 35.00: up to 1,750 points by the share
    _, out = pay_with_points(cart, selling.PointsAuth(500, offline_used=1_500), online=False)
    assert sale_event(out).payments[0].amount_fen == 500
    with pytest.raises(Refused, match="1500 of the offline allowance"):
        pay_with_points(cart, selling.PointsAuth(501, offline_used=1_500), online=False)
