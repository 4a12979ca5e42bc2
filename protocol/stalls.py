"""Market-stall alliance (issue 21.6): stalls hosted by a store, what a stall lane may sell, what the cloud believes
of a stall's sale, who may see a stall, and a stall's settlement. Pure: no I/O, no clock; both sides compute it.

- A stall is a tenant of ONE store: an id (`STALL_RE`, unique chain-wide), a name, an owner, and a fee rule:
  a commission in basis points of its sales plus a fixed fee per calendar month.
- A product belongs to a stall by its `stall` field ("" = the store's own). A stall's products are sold only on
  that stall's lane; a stall lane sells only its stall's products (`lane_refusal`): the stall is paid for exactly
  what its lane sold, and the store never sells a tenant's goods on its own till (nor a tenant another's).
- The cloud believes a store's sale about a stall (`judge_sale`) only when that stall is one of the store's stalls
  and every line is a product of that stall; a sale on the store's own lanes only when no line is a stall's.
- A `stall_owner` operator sees only their own stall (`stall_refusal`); hq_admin and viewer see every stall.
- Settlement (`settle`): commission = sales x bp / 10000 rounded half up, in integer fen; the fixed fee is due
  once for each calendar month whose first day lies in the period (so back-to-back periods never charge a month
  twice, whatever their lengths); payout = sales - commission - fees (negative: the stall owes the alliance).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from protocol.errors import ProtocolError

STALL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
NAME_MAX_CHARS = 60
COMMISSION_BP_MAX = 10_000  # 100% of sales
MONTHLY_FEE_MAX_FEN = 100_000_000  # 1,000,000 yuan a month: anything above is a typo
PERIOD_DAYS_MAX = 366 * 3  # one settlement reads at most three years


def check_stall_id(stall_id: str, path: str = "stall_id") -> None:
    if not isinstance(stall_id, str) or not STALL_RE.match(stall_id):
        raise ProtocolError(f"{path}: 1-32 letters, digits, '_' or '-' (starting with a letter or digit), "
                            f"got {stall_id!r}")


@dataclass(frozen=True, slots=True)
class Stall:
    stall_id: str
    store_id: str
    name: str
    owner: str  # who runs it (a person or a firm), as on the tenancy contract
    commission_bp: int
    monthly_fee_fen: int

    def __post_init__(self) -> None:
        check_stall_id(self.stall_id)
        if not isinstance(self.store_id, str) or not self.store_id:
            raise ProtocolError("store_id: the store hosting the stall is required")
        for field_name, text in (("name", self.name), ("owner", self.owner)):
            if not isinstance(text, str) or not text.strip() or len(text) > NAME_MAX_CHARS:
                raise ProtocolError(f"{field_name}: 1-{NAME_MAX_CHARS} characters")
        if type(self.commission_bp) is not int or not 0 <= self.commission_bp <= COMMISSION_BP_MAX:
            raise ProtocolError(f"commission_bp: an integer 0..{COMMISSION_BP_MAX} (basis points of sales)")
        if type(self.monthly_fee_fen) is not int or not 0 <= self.monthly_fee_fen <= MONTHLY_FEE_MAX_FEN:
            raise ProtocolError(f"monthly_fee_fen: an integer 0..{MONTHLY_FEE_MAX_FEN} (fen per month)")


def lane_refusal(lane: str, lane_stall: str, sku: str, product_stall: str) -> str | None:
    """None when lane `lane` (of stall `lane_stall`, "" = a store lane) may sell `sku` (of `product_stall`)."""
    if lane_stall == product_stall:
        return None
    if lane_stall == "":
        return f"{sku} is stall {product_stall}'s product: sell it on that stall's lane, not on store lane {lane}"
    if product_stall == "":
        return f"lane {lane} is stall {lane_stall}'s: it sells only that stall's products, not the store's {sku}"
    return f"lane {lane} is stall {lane_stall}'s: it sells only that stall's products, not stall {product_stall}'s {sku}"


def judge_sale(store_id: str, sale_id: str, stall: str, stalls_of_store: Mapping[str, str]) -> str:
    """"" when the cloud believes store `store_id`'s sale `sale_id` on stall `stall` ("" = the store's own);
    else why not: a store is believed about its own stalls only. `stalls_of_store`: stall id -> its store."""
    if stall:
        if stalls_of_store.get(stall) is None:
            return f"{store_id}: sale {sale_id} names stall {stall!r}, which is no stall"
        if stalls_of_store[stall] != store_id:
            return f"{store_id}: sale {sale_id} names stall {stall}, a stall of {stalls_of_store[stall]}, not of {store_id}"
    return ""


def lines_off_stall(store_id: str, sale_id: str, stall: str, skus: Iterable[str],
                    product_stall: Mapping[str, str]) -> str:
    """"" when every line of the sale is a product of its stall ("" = the store's own); else what is not. The box
    sold by the catalogue it held (a product may have moved to or off a stall since): the money is taken and the
    sale stands, so this is reported, never a reason to refuse it. `product_stall`: sku -> its stall."""
    for sku in skus:
        owner = product_stall.get(sku, "")
        if owner != stall:
            whose = f"stall {owner}'s" if owner else "the store's own"
            on = f"stall {stall}'s sale" if stall else "a sale on the store's own lane"
            return f"{store_id}: {on} {sale_id} sells {sku}, {whose} product"
    return ""


def stall_refusal(role: str, own_stall: str | None, stall_id: str) -> str | None:
    """Beyond the role's permission: None when this operator may see/act on stall `stall_id`, else why not."""
    if role != "stall_owner":
        return None
    if not own_stall:
        return "this stall_owner account has no stall"
    if own_stall != stall_id:
        return f"a stall owner of {own_stall} may not see or change stall {stall_id}"
    return None


def months_starting(first: date, last: date) -> int:
    """How many calendar months begin (their 1st day) within [first, last], both days included."""
    if last < first:
        return 0
    months = (last.year - first.year) * 12 + (last.month - first.month)
    return months + (1 if first.day == 1 else 0)


@dataclass(frozen=True, slots=True)
class Settlement:
    till_sales_fen: int
    online_sales_fen: int
    sales_fen: int
    commission_fen: int
    months_charged: int
    fixed_fees_fen: int
    payout_fen: int


def commission(sales_fen: int, bp: int) -> int:
    """Basis points of `sales_fen`, rounded half up to a whole fen (integer arithmetic: never a float)."""
    return (sales_fen * bp + 5_000) // 10_000


def settle(till_fen: int, online_fen: int, commission_bp: int, monthly_fee_fen: int, first: date, last: date) -> Settlement:
    """A stall's settlement for the days [first, last] (chain days, both included)."""
    if last < first:
        raise ProtocolError(f"to: {last} is before from: {first}")
    if (last - first).days >= PERIOD_DAYS_MAX:
        raise ProtocolError(f"to: a settlement covers at most {PERIOD_DAYS_MAX} days")
    sales = till_fen + online_fen
    cut = commission(sales, commission_bp)
    months = months_starting(first, last)
    fees = months * monthly_fee_fen
    return Settlement(till_sales_fen=till_fen, online_sales_fen=online_fen, sales_fen=sales, commission_fen=cut,
                      months_charged=months, fixed_fees_fen=fees, payout_fen=sales - cut - fees)


def day_bounds_ms(first: date, last: date, utc_offset_min: int) -> tuple[int, int]:
    """[start, end) in epoch ms of the chain days first..last (both included) in the chain's time zone."""
    day_ms, epoch = 86_400_000, date(1970, 1, 1)
    offset_ms = utc_offset_min * 60_000
    return (first - epoch).days * day_ms - offset_ms, ((last - epoch).days + 1) * day_ms - offset_ms


def parse_period(start: str, end: str) -> tuple[date, date]:
    """`from` and `to` query values as chain days; a ProtocolError naming which is wrong."""
    try:
        first = date.fromisoformat(start)
    except (TypeError, ValueError):
        raise ProtocolError(f"from: a day YYYY-MM-DD, got {start!r}") from None
    try:
        last = date.fromisoformat(end)
    except (TypeError, ValueError):
        raise ProtocolError(f"to: a day YYYY-MM-DD, got {end!r}") from None
    if last < first:
        raise ProtocolError(f"to: {last} is before from: {first}")
    if (last - first).days >= PERIOD_DAYS_MAX:
        raise ProtocolError(f"to: a settlement covers at most {PERIOD_DAYS_MAX} days")
    return first, last
