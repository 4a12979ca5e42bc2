"""Per-member limits at the till (pure): with the cloud's count a used-up rule gives nothing and the cart says why;
offline only the store's offline allowance; a sale reports the member's uses to the cloud and records them here.
And the evaluator holds a limit-only rule to a budgets_left of 0 (online orders and tills alike)."""
from __future__ import annotations

from edge.core.budget_allowance import ReclaimAllowance, apply_reclaim, changes
from edge.core.cart import Cart, CartLine, cart_json, price
from edge.core.member_limits import OFFLINE_MEMBER_USES, MemberLimits, RecordMemberUse, blocked
from edge.core.outcome import Publish
from edge.core.selling import PayRequest, Till, pay
from edge.core.state import Books, EventStamp, Member, Moment, StockLevel
from protocol.budget_messages import BudgetShareReclaimed, BudgetUsed, MemberRuleUse
from protocol.ids import make_id
from protocol.messages import Quantity
from protocol.pricing import BasketLine, BudgetLeft, PricingContext, price_basket
from protocol.pricing.catalogue import Catalogue, Product
from protocol.pricing.rules import ItemDiscount, RuleBook

NOW = 1_700_000_000_000
EGGS = Product(sku="EGG-A-0001", name="Eggs", category="eggs", unit="piece", price_fen=1_000)
ONCE = ItemDiscount(id="ONCE", name="eggs half price, once per member", percent_off_bp=5000, skus=(EGGS.sku,),
                    per_member_limit=1)
BOOK = RuleBook(1, (ONCE,))
BOOKS = Books(Catalogue((EGGS,)), BOOK, 1, 1)
M1 = Member("m1", "138****0000", "MC1", None, 0, 0, 0)


def cart(limits: MemberLimits | None, member: Member | None = M1) -> Cart:
    return Cart(lines=[CartLine(BasketLine(sku=EGGS.sku, qty=2), Quantity.pieces(2))], member=member, limits=limits)


def stamp() -> EventStamp:
    seq = iter(range(1, 100))
    return EventStamp("S036", 0, Moment(NOW, 0), lambda: make_id(NOW, next(seq)))


def test_the_evaluator_holds_a_limit_only_rule_to_a_budget_left_of_zero():
    ctx = PricingContext(channel="online", store_id="S036", now_ms=NOW)
    lines = [BasketLine(sku=EGGS.sku, qty=2)]
    assert price_basket(BOOKS.catalogue, BOOK, lines, ctx).discount_fen == 1_000
    used_up = PricingContext(channel="online", store_id="S036", now_ms=NOW,
                             budgets_left=(BudgetLeft(rule_id="ONCE", fen=0),))
    assert price_basket(BOOKS.catalogue, BOOK, lines, used_up).discount_fen == 0


def test_with_the_clouds_count_a_used_up_rule_gives_nothing_and_the_cart_says_why():
    fresh = cart(MemberLimits("m1", cloud={"ONCE": 0}))
    assert price(fresh, BOOKS, "S036", NOW).discount_fen == 1_000 and fresh.limit_notes == []
    used = cart(MemberLimits("m1", cloud={"ONCE": 1}))
    priced = price(used, BOOKS, "S036", NOW)
    assert priced.discount_fen == 0
    assert cart_json(used, priced)["limits"] == [{"rule_id": "ONCE", "name": ONCE.name,
                                                  "message": "limit of 1 per member reached"}]
    # this store's own sale the cloud has not counted yet counts too
    assert price(cart(MemberLimits("m1", cloud={}, here={"ONCE": 1})), BOOKS, "S036", NOW).discount_fen == 0
    # no member: no limit; limits of another member are not this cart's
    assert price(cart(None, member=None), BOOKS, "S036", NOW).discount_fen == 1_000
    assert price(cart(MemberLimits("m2", cloud={"ONCE": 1})), BOOKS, "S036", NOW).discount_fen == 1_000


def test_offline_only_the_stores_allowance_a_day():
    assert OFFLINE_MEMBER_USES == 1
    assert blocked(BOOK, MemberLimits("m1")) == {}  # offline, nothing used here: within the allowance
    why = blocked(BOOK, MemberLimits("m1", here={"ONCE": 0}, here_offline_today={"ONCE": 1}))
    assert why == {"ONCE": "offline: at most 1 use of this promotion per member a day without the cloud"}
    assert blocked(BOOK, MemberLimits("m1", here={"ONCE": 1})) == {"ONCE": "limit of 1 per member reached"}


def test_a_sale_reports_the_members_uses_and_records_them_here():
    out = pay(cart(MemberLimits("m1")), BOOKS, PayRequest("1", "cash", 10**6), Till("S036", online=False),
              "SALE-1", {EGGS.sku: StockLevel(EGGS.sku, 10, 0)}, stamp())
    (used,) = [e.event for e in out.effects if isinstance(e, Publish) and isinstance(e.event, BudgetUsed)]
    assert (used.member_id, used.offline, used.uses) == ("m1", True, ())
    assert used.member_uses == (MemberRuleUse(rule_id="ONCE", per_member_limit=1),)
    (row,) = [e for e in out.effects if isinstance(e, RecordMemberUse)]
    assert (row.member_id, row.rule_id, row.sale_id, row.offline) == ("m1", "ONCE", "SALE-1", True)
    online = pay(cart(MemberLimits("m1", cloud={"ONCE": 0})), BOOKS, PayRequest("1", "cash", 10**6),
                 Till("S036", online=True), "SALE-2", {}, stamp())
    (used,) = [e.event for e in online.effects if isinstance(e, Publish) and isinstance(e.event, BudgetUsed)]
    assert used.offline is False
    nobody = pay(cart(None, member=None), BOOKS, PayRequest("1", "cash", 10**6), Till("S036", online=True),
                 "SALE-3", {}, stamp())
    assert not [e for e in nobody.effects if isinstance(e, Publish) and isinstance(e.event, BudgetUsed)]


def test_a_reclaim_stops_the_share_at_the_till():
    msg = BudgetShareReclaimed(event_id=make_id(NOW, 1), store_id="S036", seq=1, wall_ms=NOW, mono_ms=0,
                               rule_id="CAP", returned_fen=700, reason="ended")
    outcome = apply_reclaim(msg)
    assert outcome.effects == (ReclaimAllowance("CAP"),) and changes(outcome)
