"""The till's side of points (issue 17.5), pure: a member's sale carries a survey link signed with the store's
survey key (on the answer and on the receipt); a sale without a member, or a box without a key, carries none."""
from __future__ import annotations

from edge.core import selling
from edge.core.outcome import PrintTicket
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
