"""Points as money and the survey token (protocol/points.py), and the ledger's GrantPoints: pure, no servers."""
from __future__ import annotations

from actors.member_ledger import GrantPoints, MemberLedger, RecordSpend, RedeemPoints
from protocol.points import (
    points_cap,
    points_refusal,
    points_value_fen,
    redeem_id,
    survey_key,
    survey_token,
    token_parts,
    token_valid,
)

T0 = 1_700_000_000_000


def test_a_point_is_worth_a_fen_and_points_pay_at_most_half():
    assert points_value_fen(1_234) == 1_234  # 100 points = 1 yuan
    assert points_cap(3_001) == 1_500
    assert points_refusal(3_000, 1_500) is None
    assert "at most 1500 points" in (points_refusal(3_000, 1_501) or "")
    assert "from 1" in (points_refusal(3_000, 0) or "") and "from 1" in (points_refusal(3_000, -5) or "")
    assert points_refusal(3_000, 800, balance=799) == "insufficient points: 800 asked, the member has 799"


def test_redemption_ids_derive_from_what_they_pay():
    assert redeem_id("O1") == redeem_id("O1") == "pts:O1" and redeem_id("O1", 2) == "pts:O1#2"


def test_a_token_verifies_only_with_its_stores_key_and_unaltered():
    key = survey_key("pw-of-S001", "S001")
    token = survey_token(key, "S001", "SALE123")
    assert token_valid(key, token) and token_parts(token)[:2] == ("S001", "SALE123")
    assert not token_valid(survey_key("pw-of-S002", "S002"), token)  # another store's key
    assert not token_valid(key, token.replace("SALE123", "SALE124"))  # another sale, same mac
    store, sale, mac = token.split(".")
    assert not token_valid(key, f"S002.{sale}.{mac}")  # another store named
    assert not token_valid(key, token[:-1] + ("A" if token[-1] != "A" else "B"))
    # a store signing with its own key for another store's id: the cloud checks with that other store's key
    forged = survey_token(survey_key("pw-of-S002", "S002"), "S001", "SALE123")
    assert not token_valid(key, forged)
    for bad in ("", "a.b", "a.b.c.d", "S001..x", "S 1.SALE.x", "../etc.SALE.x"):
        assert not token_valid(key, bad)


def test_granted_points_balance_against_points_issued_and_redeem_refused_past_the_balance():
    ledger = MemberLedger()
    ledger.apply(RecordSpend(id="s", member="M1", amount_fen=50_000), T0)  # 500 points earned
    assert ledger.apply(RedeemPoints(id="pts:O1", member="M1", points=501), T0).reason == "insufficient points"
    assert ledger.apply(RedeemPoints(id="pts:O1b", member="M1", points=300), T0)["points"] == 200
    assert ledger.apply(GrantPoints(id="pts-back:O1b", member="M1", points=300, why="order cancelled"), T0)["points"] == 500
    again = ledger.apply(GrantPoints(id="pts-back:O1b", member="M1", points=300, why="order cancelled"), T0)
    assert again.status == "exists" and ledger.member_view("M1", T0)["points"] == 500  # given back once
    assert ledger.audit() == []
