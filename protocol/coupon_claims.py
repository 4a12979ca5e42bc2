"""What the cloud believes of a store's coupon redemption (`CouponRedeemed`), judged like `protocol.store_facts`:
pure, the shell gathers what the cloud knows (the coupon's rule in the promotion book, the sale's basket) and passes
it in.

Guarantees:
- `judge_saving` refuses a claim the coupon cannot have given: a rule other than the one its definition grants, or
  a saving above the most that rule can give (`saving_max`): an amount-off rule its amount; a percent-off rule its
  percentage of the sale's basket at list prices (`basket_list_fen`: the goods plus every promotion's saving, as
  `cloud/messaging/promotion_uses.py` records it), which bounds the eligible subtotal the till priced it on. Never
  more than the basket itself. A percent rule on a sale the cloud has not seen: a coupon taken without the cloud's
  hold gives at most the store's whole daily fen allowance (an honest till refuses a sale whose offline coupons
  would give more: `edge.core.coupons.check_allowance`); one held by the cloud is not bounded (nothing says what the
  basket was; an honest till's sale always reaches the cloud before its coupons).
- `allowance_breach` words the report of a store past its daily fen allowance of coupons taken without the cloud's
  hold (`OFFLINE_COUPON_FEN_PER_DAY` per chain day): such a redemption is believed (the goods left the store), and
  recorded with this reason for HQ.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from protocol.money import portion_fen
from protocol.policy import OFFLINE_COUPON_FEN_PER_DAY
from protocol.pricing.rules import Coupon as CouponRule
from protocol.promotion_uses import RuleUse


def basket_list_fen(total_fen: int, promotions: Iterable[RuleUse]) -> int:
    """A till sale's basket at list prices: what it sold for plus what every rule gave away on it."""
    return total_fen + sum(p.saving_fen for p in promotions)


def saving_max(rule: CouponRule, list_fen: int | None, offline: bool = False) -> int | None:
    """The most a coupon of `rule` can give on a basket of `list_fen` (None: the basket is unknown), taken `offline`
    (without the cloud's hold) or not; None when nothing bounds it (a held percent coupon on an unknown basket)."""
    if rule.amount_off_fen:
        return rule.amount_off_fen if list_fen is None else min(rule.amount_off_fen, list_fen)
    if list_fen is None:
        return OFFLINE_COUPON_FEN_PER_DAY if offline else None
    return min(portion_fen(list_fen, rule.percent_off_bp), list_fen)


def judge_saving(code: str, claimed_rule: str, saving_fen: int, granted_rule: str, rule: CouponRule | None,
                 list_fen: int | None, offline: bool = False) -> str | None:
    """None when the store's claim that coupon `code` gave `saving_fen` under `claimed_rule` is believable, else
    the reason. `granted_rule`: the rule its definition grants; `rule`: that rule as the book has it now (None: no
    longer a coupon rule in the book, then only the rule id is judged); `list_fen`: the sale's basket at list
    prices, if the cloud has the sale; `offline`: taken without the cloud's hold."""
    if claimed_rule != granted_rule:
        return f"coupon {code} grants promotion {granted_rule}, not {claimed_rule}"
    if rule is None:
        return None
    most = saving_max(rule, list_fen, offline)
    if most is not None and saving_fen > most:
        on = (f" on a basket of {list_fen} fen at list prices" if list_fen is not None else
              " taken offline, on a sale the cloud has not seen" if not rule.amount_off_fen else "")
        return (f"coupon {code} claims a saving of {saving_fen} fen; its promotion {rule.id} gives at most "
                f"{most} fen{on}")
    return None


def allowance_breach(store_id: str, day: date, taken_fen: int,
                     allowance_fen: int = OFFLINE_COUPON_FEN_PER_DAY) -> str | None:
    """The report of store `store_id` having taken `taken_fen` of coupons without the cloud's hold on chain day
    `day` (this redemption included), when that is past its allowance; else None."""
    if taken_fen <= allowance_fen:
        return None
    return (f"store {store_id} took {taken_fen} fen of coupons offline on {day.isoformat()}, past its allowance of "
            f"{allowance_fen}")
