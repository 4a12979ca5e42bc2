"""The store database's side of what returns undo of their sales' promotions (`edge.core.return_gifts`,
`edge.core.returns`): the kept gifts' prices each return took off its refund (`return_deductions`: a sale's gift is
paid for once), the coupons a whole return let go (their row of this store's redemptions kept, marked
`released_by` the return, in the return's transaction: the member may use the coupon here again only once the
cloud's wallet answered after it shows it issued, or the cloud grants a till hold on it - the cloud may keep it),
and a whole return's uses of per-member-limited rules (`member_rule_uses`: the member may use the rule here again).
Registered through `edge.returns_db` (its SCHEMA and EXECUTORS)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge.core.return_gifts import GiftGiven, UndoPromotions, gifts_of_sale
from protocol.money import weighed_amount_fen
from protocol.pricing.rules import Gift

SCHEMA = """
create table if not exists return_deductions (return_id text not null, source text not null, rule_id text not null,
    sku text not null, fen integer not null, primary key (return_id, rule_id));
create index if not exists return_deductions_source on return_deductions (source);
create table if not exists return_points (return_id text primary key, source text not null, points integer not null);
create index if not exists return_points_source on return_points (source);
"""


async def _undo(db, e: UndoPromotions) -> None:
    await db.executemany("insert into return_deductions (return_id, source, rule_id, sku, fen) values (?, ?, ?, ?, ?) "
                         "on conflict do nothing",
                         [(e.return_id, e.source, d.rule_id, d.sku, d.amount_fen) for d in e.deductions])
    if e.points_back:
        await db.execute("insert into return_points (return_id, source, points) values (?, ?, ?) on conflict do nothing",
                         (e.return_id, e.source, e.points_back))
    sale_id = e.source.partition(":")[2]
    # Kept, marked released by the return: the cloud gives the coupon back only if this sale holds it and the return
    # is within its window, so the tills take it again only once the cloud's wallet answered after now shows it
    # (a snapshot row of it from before - the cloud not yet told of the sale - goes: `edge.coupons_db`).
    await db.executemany("update coupon_redemptions set released_by = ? where code = ? and sale_id = ? "
                         "and released_by is null", [(e.return_id, code, sale_id) for code in e.coupons_back])
    await db.executemany("delete from coupon_snapshot where code = ?", [(code,) for code in e.coupons_back])
    if e.whole:  # the sale's uses of per-member-limited rules given back (edge/budget_db.py's rows; the cloud's too)
        await db.execute("delete from member_rule_uses where sale_id = ?", (sale_id,))


EXECUTORS: dict[type, Any] = {UndoPromotions: _undo}


async def sale_coupons(db, sale_id: str) -> tuple[str, ...]:
    """The coupons this store's tills redeemed with the sale (and did not let go since)."""
    async with db.execute("select code from coupon_redemptions where sale_id = ? and released_by is null "
                          "order by code", (sale_id,)) as cur:
        return tuple(r[0] for r in await cur.fetchall())


async def points_back(db, source_key: str) -> int:
    """The points the sale's earlier returns gave back."""
    async with db.execute("select coalesce(sum(points), 0) from return_points where source = ?", (source_key,)) as cur:
        return int((await cur.fetchone())[0])


async def gifts_settled(db, source_key: str) -> tuple[str, ...]:
    """The gift rules whose gift an earlier return of the sale paid for."""
    async with db.execute("select distinct rule_id from return_deductions where source = ?", (source_key,)) as cur:
        return tuple(r[0] for r in await cur.fetchall())


def sale_gifts(lines: Iterable[tuple[str, int, str, int]], books) -> tuple[GiftGiven, ...]:
    """The gifts the sale's lines show, judged by the store's book and catalogue now (`gifts_of_sale`)."""
    if books.rule_book is None or books.catalogue is None:
        return ()
    rules = [r for r in books.rule_book.rules if isinstance(r, Gift)]

    def category_of(sku: str) -> str:
        product = books.product(sku)
        return product.category if product is not None else ""

    def value_of(rule: Gift) -> int:
        product = books.product(rule.gift_sku)
        if product is None:
            return 0
        return weighed_amount_fen(rule.gift_qty, product.price_fen) if product.weighed \
            else product.price_fen * rule.gift_qty
    return tuple(g for g in gifts_of_sale(lines, rules, category_of, value_of) if g.value_fen > 0)
