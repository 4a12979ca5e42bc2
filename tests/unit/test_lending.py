"""Borrowing across channels, the store's side as pure decisions: how much it lends the cloud from its offline share
(edge.core.escrow), the outcome it commits (edge.core.lending), HQ's ratio applied at the store, and the cloud's
trust check that does not judge an already-applied loan twice (protocol.store_facts)."""
from __future__ import annotations

import itertools

import pytest

from edge.core import escrow, lending
from edge.core.outcome import ChangeEscrow, MarkApplied, Publish, SetAllocation
from edge.core.state import EventStamp, Moment, StockLevel
from protocol import codec, subjects
from protocol.errors import ProtocolError
from protocol.escrow_messages import AllocationSet, EscrowBorrowAnswered, EscrowBorrowRequested
from protocol.ids import make_id
from protocol.messages import EscrowGranted, EscrowReclaimRequested
from protocol.policy import DEFAULT_ONLINE_RATIO_BP
from protocol.store_facts import Known, judge

STORE = "S001"
NOW = Moment(1_700_000_000_000, 5_000)


def stamp(last_seq: int = 0) -> EventStamp:
    n = itertools.count(1)
    return EventStamp(STORE, last_seq, NOW, lambda: make_id(NOW.wall_ms, next(n)))


def borrow(qty: int, sku: str = "A1", store: str = STORE, min_qty: int = 0) -> EscrowBorrowRequested:
    return EscrowBorrowRequested(event_id=make_id(NOW.wall_ms, 900), store_id=store, seq=0, wall_ms=NOW.wall_ms,
                                 mono_ms=0, borrow_id=make_id(NOW.wall_ms, 901), sku=sku, qty=qty, min_qty=min_qty)


# ---- how much to lend ------------------------------------------------------------------------------------------
def test_with_100_on_hand_and_40_online_a_borrow_of_10_is_lent_in_full():
    # the till keeps max(5, 10% of 100) = 10; the offline share is 60: up to 50 can be lent
    assert escrow.till_keeps(100) == 10
    assert escrow.lendable(100, 40, DEFAULT_ONLINE_RATIO_BP) == 50
    assert escrow.lend(10, 100, 40, DEFAULT_ONLINE_RATIO_BP) == 10


def test_a_loan_stops_at_the_tills_floor_and_what_carts_hold():
    assert escrow.lend(80, 100, 40, 4_000) == 50  # 100 - 40 - 10 kept
    assert escrow.lend(80, 100, 40, 4_000, in_carts=7) == 43  # lanes ringing up 7 keep them too
    assert escrow.lend(5, 12, 4, 4_000) == 3  # small stock: the minimum of 5 units is kept: 12 - 4 - 5
    assert escrow.lend(5, 9, 4, 4_000) == 0  # 9 - 4 = 5 offline, all of it the floor
    assert escrow.lend(5, 3, 6, 4_000) == 0  # the till sold past its share already: nothing to lend
    assert escrow.lend(0, 100, 0, 4_000) == 0


def test_a_ratio_of_0_means_hq_took_the_sku_off_line_here():
    assert escrow.lend(10, 100, 0, 0) == 0


def test_ratio_for_prefers_the_skus_own_then_its_categorys_then_the_default():
    assert escrow.ratio_for("A1", "fruit", {"A1": 7_000}, {"fruit": 2_000}, 4_000) == 7_000
    assert escrow.ratio_for("A2", "fruit", {"A1": 7_000}, {"fruit": 2_000}, 4_000) == 2_000
    assert escrow.ratio_for("A3", "meat", {"A1": 7_000}, {"fruit": 2_000}, 4_000) == 4_000
    assert escrow.ratio_for("A3", None, {}, {"fruit": 2_000}, 4_000) == 4_000


def test_rebalance_grants_up_to_a_higher_share_and_asks_back_past_a_lower_one():
    assert escrow.rebalance(100, 40, 8_000) == 40
    assert escrow.rebalance(100, 40, 1_000) == -30
    assert escrow.rebalance(100, 40, 4_000) == 0
    assert escrow.rebalance(-3, 2, 4_000) == -2


# ---- the loan as an outcome ------------------------------------------------------------------------------------
def test_a_loan_commits_escrow_and_its_grant_event_together_and_the_answer_names_the_grant():
    out = lending.lend(borrow(10), False, True, StockLevel("A1", 100, 40), 4_000, 0, stamp(last_seq=7))
    answer = out.reply
    assert isinstance(answer, EscrowBorrowAnswered)
    mark, change, publish = out.effects
    assert isinstance(mark, MarkApplied) and mark.event_id == borrow(10).borrow_id
    assert change == ChangeEscrow("A1", 10)
    assert isinstance(publish, Publish) and isinstance(publish.event, EscrowGranted)
    grant = publish.event
    assert (grant.sku, grant.qty, grant.escrow_after, grant.seq, grant.loan) == ("A1", 10, 50, 8, True)
    assert (answer.lent, answer.asked, answer.grant_event_id, answer.escrow_after, answer.on_hand) == \
        (10, 10, grant.event_id, 50, 100)
    assert answer.seq == 0 and out.last_seq == 8  # the answer is a reply; only the grant takes a sequence number
    assert codec.decode(codec.encode(answer)) == answer


def test_a_loan_that_cannot_be_made_says_why_and_changes_no_stock():
    out = lending.lend(borrow(10), False, True, StockLevel("A1", 9, 4), 4_000, 0, stamp())
    assert out.reply.lent == 0 and "till's floor" in out.reply.reason and not out.reply.grant_event_id
    # 100 on hand, 40 online: 50 can be lent; 60 asked lends none, unless the asker takes 50 or fewer
    assert lending.lend(borrow(60), False, True, StockLevel("A1", 100, 40), 4_000, 0, stamp()).reply.lent == 0
    part = lending.lend(borrow(60, min_qty=30), False, True, StockLevel("A1", 100, 40), 4_000, 0, stamp())
    assert part.reply.lent == 50 and ChangeEscrow("A1", 50) in part.effects
    assert [type(e) for e in out.effects] == [MarkApplied]  # remembered: the same borrow is not lent twice
    off = lending.lend(borrow(10), False, True, StockLevel("A1", 100, 0), 0, 0, stamp())
    assert off.reply.lent == 0 and "ratio" in off.reply.reason


def test_the_same_borrow_again_lends_nothing_more():
    out = lending.lend(borrow(10), True, True, StockLevel("A1", 100, 40), 4_000, 0, stamp())
    assert out.reply.lent == 0 and "answered already" in out.reply.reason and out.effects == ()


def test_a_borrow_for_another_store_or_an_unknown_product_lends_nothing():
    assert lending.lend(borrow(10, store="S002"), False, True, StockLevel("A1", 100, 40), 4_000, 0,
                        stamp()).reply.lent == 0
    unknown = lending.lend(borrow(10, sku="NOPE"), False, False, StockLevel("NOPE", 100, 0), 4_000, 0, stamp())
    assert unknown.reply.lent == 0 and "unknown product" in unknown.reply.reason and unknown.effects == ()


def test_an_answer_must_be_consistent():
    with pytest.raises(ProtocolError, match="lent must be 0..asked"):
        EscrowBorrowAnswered(event_id=make_id(1, 1), store_id=STORE, seq=0, wall_ms=1, mono_ms=0,
                             borrow_id=make_id(1, 2), sku="A1", asked=5, lent=6, grant_event_id=make_id(1, 3),
                             on_hand=10, escrow_after=6)
    with pytest.raises(ProtocolError, match="names its grant_event_id"):
        EscrowBorrowAnswered(event_id=make_id(1, 1), store_id=STORE, seq=0, wall_ms=1, mono_ms=0,
                             borrow_id=make_id(1, 2), sku="A1", asked=5, lent=5, grant_event_id="",
                             on_hand=10, escrow_after=6)


# ---- HQ's ratio at the store -----------------------------------------------------------------------------------
def allocation(scope: str, key: str, ratio_bp: int, version: int = 1) -> AllocationSet:
    return AllocationSet(event_id=make_id(NOW.wall_ms, 800 + version), store_id=STORE, seq=3, wall_ms=NOW.wall_ms,
                         mono_ms=0, scope=scope, key=key, ratio_bp=ratio_bp, version=version)


LEVELS = {"A1": StockLevel("A1", 100, 40), "A2": StockLevel("A2", 50, 20), "B1": StockLevel("B1", 10, 4)}
CATEGORIES = {"A1": "fruit", "A2": "fruit", "B1": "meat"}


def test_a_higher_ratio_for_a_sku_is_kept_and_grants_the_cloud_its_new_share():
    out = lending.apply_allocation(allocation("sku", "A1", 8_000), False, 0, {}, {}, CATEGORIES, LEVELS, 4_000,
                                   stamp())
    assert SetAllocation("sku", "A1", 8_000, 1) in out.effects
    assert ChangeEscrow("A1", 40) in out.effects  # 80% of 100 = 80, it held 40
    grants = [e.event for e in out.effects if isinstance(e, Publish)]
    assert [(g.KIND, g.sku, g.qty, g.escrow_after) for g in grants] == [("escrow.granted", "A1", 40, 80)]


def test_a_lower_ratio_for_a_category_asks_back_what_the_cloud_holds_beyond_it_except_a_sku_with_its_own():
    out = lending.apply_allocation(allocation("category", "fruit", 1_000), False, 0, {"A1": 4_000}, {}, CATEGORIES,
                                   LEVELS, 4_000, stamp())
    asks = [e.event for e in out.effects if isinstance(e, Publish)]
    # A1 keeps its own 40%; A2: 10% of 50 = 5, it held 20: 15 asked back (escrow drops when the cloud returns them)
    assert [(type(a), a.sku, a.qty) for a in asks] == [(EscrowReclaimRequested, "A2", 15)]
    assert not any(isinstance(e, ChangeEscrow) for e in out.effects)


def test_an_allocation_applies_once_and_an_older_version_never_replaces_a_newer_one():
    assert lending.apply_allocation(allocation("sku", "A1", 8_000), True, 0, {}, {}, CATEGORIES, LEVELS, 4_000,
                                    stamp()).reply == "duplicate"
    old = lending.apply_allocation(allocation("sku", "A1", 8_000, version=2), False, 3, {}, {}, CATEGORIES, LEVELS,
                                   4_000, stamp())
    assert [type(e) for e in old.effects] == [MarkApplied] and "not newer" in old.notes[0]


def test_an_allocation_names_a_known_scope_and_a_ratio_in_range():
    with pytest.raises(ProtocolError, match="0..10000"):
        allocation("sku", "A1", 10_001)
    with pytest.raises(ProtocolError, match="scope"):
        allocation("shelf", "A1", 1_000)


# ---- the cloud's trust check and the store's permissions -------------------------------------------------------
def test_a_loan_the_cloud_already_applied_is_not_judged_again_when_it_arrives_as_an_event():
    grant = EscrowGranted(event_id=make_id(NOW.wall_ms, 7), store_id=STORE, seq=4, wall_ms=NOW.wall_ms, mono_ms=0,
                          sku="A1", qty=10, escrow_after=50)
    # the cloud's escrow (50) includes the loan already: judged again it would look like 60 of 55 on hand
    known = Known(on_hand={(STORE, "A1"): 55}, escrow={(STORE, "A1"): 50})
    assert grant.event_id in judge([grant], known)
    known.applied_grants = {grant.event_id}
    assert judge([grant], known) == {}


def test_a_store_may_subscribe_to_its_own_borrow_subject_and_answer_only_there():
    perms = subjects.store_permissions("S007")
    assert subjects.store_escrow_borrow("S007") == "fm.store.S007.escrow.borrow"
    assert perms["subscribe"]["allow"] == ["_INBOX_S007.>", "fm.store.S007.escrow.borrow"]
    assert perms["allow_responses"]["max"] == 1
    assert not any(s == ">" or s.startswith("$JS.API.>") for s in perms["publish"]["allow"])
