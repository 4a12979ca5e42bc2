"""Promotion uses on the cloud's side: every basket sold (a till sale, an online order) with the rules it used and
what each gave away, recorded once, for the promotion-effect report (cloud/services/promotion_report.py).

Guarantees:
- A till sale's basket and uses are recorded in the bridge's transaction, keyed by the sale (`till:<sale id>`): a
  redelivered sale records nothing more (`on conflict do nothing`). Believed as the store's own fact about its own
  sale (the message's check, protocol.promotion_uses, holds each rule to a valid id, once, with a bounded saving).
- An online order's basket is recorded when it is placed, from the same pricing the order was made with, keyed by
  the order (`online:<order id>`): a retried request for the same order records nothing more. Whether it counts is
  decided at report time by the order's status (only paid orders were sales): an order that expires or is
  cancelled unpaid never counts, with no hook in expiry or cancel.
- Every basket is recorded, with or without promotions: "sales without the rule" come from the same rows.
- `goods_fen` is what the goods sold for (after discounts, before any delivery fee); `list_fen` is the same in both
  channels: `goods_fen` plus every recorded use's saving, i.e. the goods at list prices with a reached gift at its
  value (a gift rule's saving is the gift's value), so list_fen - goods_fen is what the basket's rules gave away, as
  the report's discount_fen sums it. (The online pricing's subtotal leaves the gift out; the till's total plus its
  savings has it: both are now goods + savings.)
"""
from __future__ import annotations

from cloud.messaging.bulk import insert_rows
from protocol.messages import Message, SaleCommitted

BASKET_COLUMNS = (("basket_id", "text"), ("channel", "text"), ("store_id", "text"), ("ref", "text"), ("member_id", "text"),
                  ("list_fen", "bigint"), ("goods_fen", "bigint"), ("at_ms", "bigint"))
USE_COLUMNS = (("basket_id", "text"), ("rule_id", "text"), ("saving_fen", "bigint"))
MIGRATION_SQL = """
    create table if not exists promotion_baskets (
        basket_id  text primary key,             -- till:<sale id> | online:<order id>
        channel    text not null check (channel in ('till', 'online')),
        store_id   text not null,                -- the till's store; the store an online order was priced for
        ref        text not null,                -- the sale id or order id
        member_id  text,
        list_fen   bigint not null,
        goods_fen  bigint not null,
        at_ms      bigint not null
    );
    create index if not exists promotion_baskets_at on promotion_baskets (at_ms) include (channel, store_id);
    create table if not exists promotion_uses (
        basket_id  text not null references promotion_baskets (basket_id),
        rule_id    text not null,
        name       text not null default '',
        saving_fen bigint not null check (saving_fen >= 0),
        primary key (basket_id, rule_id)
    );
    create index if not exists promotion_uses_rule on promotion_uses (rule_id);
"""


async def record_till(conn, events: list[Message]) -> None:
    """The baskets and promotion uses of the batch's believed till sales, in the bridge's transaction."""
    sales = [e for e in events if isinstance(e, SaleCommitted)]
    if not sales:
        return
    await insert_rows(conn, "promotion_baskets", BASKET_COLUMNS,
                      [(f"till:{e.sale_id}", "till", e.store_id, e.sale_id, e.member_id,
                        e.total_fen + sum(p.saving_fen for p in e.promotions), e.total_fen, e.wall_ms) for e in sales])
    await insert_rows(conn, "promotion_uses", USE_COLUMNS,
                      [(f"till:{e.sale_id}", p.rule_id, p.saving_fen) for e in sales for p in e.promotions])


async def record_online(db, order_id: str, store_id: str, member_id: str | None, explain: dict, at_ms: int) -> None:
    """An online order's basket as it was priced (`explain`: the pricing's `subtotal_fen`, `discount_fen` and
    `applied` [{rule_id, name, saving_fen}]), once per order."""
    async with db.acquire() as conn, conn.transaction():
        goods = explain["subtotal_fen"] - explain["discount_fen"]
        made = await conn.fetchval(
            """insert into promotion_baskets (basket_id, channel, store_id, ref, member_id, list_fen, goods_fen, at_ms)
               values ($1, 'online', $2, $3, $4, $5, $6, $7) on conflict do nothing returning basket_id""",
            f"online:{order_id}", store_id, order_id, member_id,
            goods + sum(max(0, a["saving_fen"]) for a in explain["applied"]), goods, at_ms)
        if made and explain["applied"]:
            await conn.executemany(
                "insert into promotion_uses (basket_id, rule_id, name, saving_fen) values ($1, $2, $3, $4) "
                "on conflict do nothing",
                [(made, a["rule_id"], a["name"], max(0, a["saving_fen"])) for a in explain["applied"]])
