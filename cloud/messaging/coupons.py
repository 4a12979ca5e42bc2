"""Coupons and what the stores report (issue 17 item 1): coupons the tills redeemed, and coupons issued by till
sales ("spend >= 50 at a till -> a 10-yuan online coupon").

Guarantees:
- A `CouponRedeemed` is believed only for a coupon that exists, is the named member's and is valid at the till, at
  that store, at the sale's time; a store takes at most `OFFLINE_COUPONS_PER_DAY` coupons a day without a hold of
  its own (`admit`; else refused with the reason: dead-lettered, the store told). Recorded in the bridge's
  transaction with its event id (`record`): the coupon becomes redeemed by `store:<store>:<sale>` in one
  conditional UPDATE - from `issued`, or from `reserved` for the very hold the sale names when it is that store's
  till hold (the hold id stays in `reserved_for`: a redemption without one was taken offline), with the saving the
  till says it gave (`saving_fen`). A coupon found
  redeemed (or reserved) by anyone else is a CONFLICT: the sale stands (the goods left), the conflict is recorded
  once per event (`coupon_conflicts`), shown at `GET /operator/coupons/conflicts` and counted in `/audit` - never
  a silent loss.
- The saving is believed only as far as the coupon can give it (`protocol.coupon_claims.judge_saving`: the rule its
  definition grants, at most that rule's amount, or its share of the sale's basket when the cloud has the sale, in
  this batch or recorded before); a claim past it is refused with the reason. Coupons a store's tills took without
  a hold give at most `OFFLINE_COUPON_FEN_PER_DAY` fen a chain day (the sale's): one past it is believed - the goods
  left - and recorded once as an `over_allowance` conflict saying how much the store took that day and its allowance
  (`coupon_conflicts.kind`), on the same page and count as a code used twice.
- A till sale with a member (`SaleCommitted`) whose total reaches a definition's `till_spend` trigger issues that
  member one coupon of it, in the bridge's transaction with the sale's event id (`record`), under the source
  `sale:<event id>`: a redelivered sale finds its coupon and issues nothing more; a store never names the coupon,
  so it cannot mint one (the cloud decides from the sale it believes).
- The definition's limits hold here as for a campaign (its row lock); a definition scoped to stores triggers only
  on sales of those stores; a definition whose window ended issues nothing.
"""
from __future__ import annotations

import dataclasses
import json
import logging

from cloud.services.coupons import coupon_of, issue_in
from protocol import coupon_claims
from protocol import coupons as cp
from protocol.coupon_messages import CouponRedeemed
from protocol.messages import Message, SaleCommitted
from protocol.policy import OFFLINE_COUPONS_PER_DAY, chain_day, chain_day_start_ms
from protocol.pricing.rules import Coupon as CouponRule

DAY_MS = 24 * 3600 * 1000

log = logging.getLogger("freshmesh.coupons")


async def admit(cloud, events: list[Message]) -> dict[str, str]:
    """event id -> why refused, for the batch's CouponRedeemed a store may not claim: no such coupon, another
    member's, or not one the store's tills may take - not valid at the till, not at this store, or outside its window
    at the sale's time (`protocol.coupons.redeemable`, its status aside: a coupon used twice is a conflict, recorded)."""
    mine = [e for e in events if isinstance(e, CouponRedeemed)]
    if not mine:
        return {}
    rows = {r["code"]: r for r in await cloud.db.fetch(
        "select c.*, d.body, d.rule_id from coupons c join coupon_definitions d using (definition_id) "
        "where c.code = any($1::text[])", [e.code for e in mine])}
    baskets = await _baskets(cloud, events, mine)
    refused: dict[str, str] = {}
    taken: dict[tuple[str, int], int] = {}  # (store, chain day start) -> coupons taken offline
    for e in mine:
        row = rows.get(e.code)
        if row is None:
            refused[e.event_id] = f"coupon.redeemed: no coupon {e.code}"
        elif row["member_id"] != e.member_id:
            refused[e.event_id] = f"coupon.redeemed: coupon {e.code} is not member {e.member_id}'s"
        elif why := cp.redeemable(dataclasses.replace(coupon_of(row), status="issued"), e.member_id, "offline",
                                  e.store_id, e.wall_ms):
            refused[e.event_id] = f"coupon.redeemed: coupon {e.code} at store {e.store_id}: {why}"
        elif why := _saving_refused(cloud, row, e, baskets.get((e.store_id, e.sale_id))):
            refused[e.event_id] = f"coupon.redeemed: store {e.store_id}, sale {e.sale_id}: {why}"
        elif not _held_here(row, e) and row["redeemed_by"] != f"store:{e.store_id}:{e.sale_id}":
            day = chain_day_start_ms(e.wall_ms)
            if (e.store_id, day) not in taken:
                taken[e.store_id, day] = await cloud.db.fetchval(
                    "select count(*) from coupons where status = 'redeemed' and channel = 'offline' and store_id = $1 "
                    "and reserved_for is null and redeemed_ms >= $2 and redeemed_ms < $3", e.store_id, day,
                    day + DAY_MS)
            if taken[e.store_id, day] >= OFFLINE_COUPONS_PER_DAY:
                refused[e.event_id] = (f"coupon.redeemed: coupon {e.code}: store {e.store_id} already took "
                                       f"{OFFLINE_COUPONS_PER_DAY} coupons without the cloud's hold that day")
            else:
                taken[e.store_id, day] += 1
    return refused


def _saving_refused(cloud, row, e: CouponRedeemed, list_fen: int | None) -> str | None:
    """`offline` is the cloud's own fact, never the store's flag: the cloud did not hold the coupon for this sale (a
    hold id it never gave is no hold)."""
    rule = cloud.world.rule_book.by_id.get(row["rule_id"])
    return coupon_claims.judge_saving(e.code, e.rule_id, e.saving_fen, row["rule_id"],
                                      rule if isinstance(rule, CouponRule) else None, list_fen,
                                      not _held_for(row, e))


async def _baskets(cloud, events: list[Message], mine: list[CouponRedeemed]) -> dict[tuple[str, str], int]:
    """(store, sale id) -> the sale's basket at list prices, for the sales the redemptions name: from the batch's
    believed sales, else as recorded before (`promotion_baskets`, the same sum); a sale never seen is absent."""
    out = {(e.store_id, e.sale_id): coupon_claims.basket_list_fen(e.total_fen, e.promotions)
           for e in events if isinstance(e, SaleCommitted)}
    missing = {(e.store_id, e.sale_id) for e in mine} - set(out)
    if missing:
        for r in await cloud.db.fetch(
                "select store_id, ref, list_fen from promotion_baskets where basket_id = any($1::text[])",
                [f"till:{sale}" for _, sale in missing]):
            if (r["store_id"], r["ref"]) in missing:  # another store's sale of the same id is not this one
                out[r["store_id"], r["ref"]] = r["list_fen"]
    return out


def _held_for(row, e: CouponRedeemed) -> bool:
    """The cloud held the coupon for this sale: reserved now by this store's till hold the sale names, or already
    redeemed by this very sale from that hold (a redelivery)."""
    return _held_here(row, e) or (bool(e.hold_id) and row["reserved_for"] == e.hold_id
                                  and row["redeemed_by"] == f"store:{e.store_id}:{e.sale_id}")


def _held_here(row, e: CouponRedeemed) -> bool:
    """The coupon is reserved by this store's own till hold, the one the sale names (not taken offline)."""
    return (row["status"] == "reserved" and bool(e.hold_id) and row["reserved_for"] == e.hold_id
            and row["channel"] == "offline" and row["store_id"] == e.store_id)


async def record(conn, events: list[Message]) -> None:
    for e in events:
        if isinstance(e, CouponRedeemed):
            await _redeemed(conn, e)
    sales = [e for e in events if isinstance(e, SaleCommitted) and e.member_id]
    if not sales:
        return
    triggers = await conn.fetch("select definition_id, trigger_min_fen, body from coupon_definitions "
                                "where trigger_min_fen is not null order by definition_id")
    for sale in sales:
        for t in triggers:
            stores = _stores(t["body"])
            if sale.total_fen < t["trigger_min_fen"] or (stores and sale.store_id not in stores):
                continue
            assert sale.member_id is not None
            _, refused = await issue_in(conn, t["definition_id"], [sale.member_id], f"sale:{sale.event_id}",
                                        "till_spend", f"till:{sale.store_id}", sale.wall_ms)
            if refused:
                log.info("sale %s at %s: no %s coupon (%s)", sale.sale_id, sale.store_id, t["definition_id"],
                         refused[sale.member_id])


async def _redeemed(conn, e: CouponRedeemed) -> None:
    by = f"store:{e.store_id}:{e.sale_id}"
    done = await conn.fetchrow(
        """update coupons set status = 'redeemed', redeemed_by = $2, channel = 'offline', store_id = $3,
               redeemed_ms = $4, reserved_until_ms = null, saving_fen = $6,
               reserved_for = case when status = 'reserved' then reserved_for end
           where code = $1 and (status = 'issued' or (status = 'reserved' and reserved_for = $5 and $5 <> ''
                                                    and channel = 'offline' and store_id = $3))
           returning code, reserved_for""", e.code, by, e.store_id, e.wall_ms, e.hold_id, e.saving_fen)
    if done:
        if done["reserved_for"] is None:  # taken without the cloud's hold: within the day's fen allowance?
            await _fen_allowance(conn, e)
        return
    row = await conn.fetchrow("select status, redeemed_by, reserved_for from coupons where code = $1", e.code)
    if row["redeemed_by"] == by:
        return  # this sale's redemption, applied before
    first = row["redeemed_by"] or row["reserved_for"]
    detail = (f"coupon {e.code} used at {e.store_id} on sale {e.sale_id} ({'offline' if e.offline else 'online'}) "
              f"was already {row['status']} by {first}: the sale stands; reported")
    await _conflict(conn, e, "used_elsewhere", first, detail)


async def _fen_allowance(conn, e: CouponRedeemed) -> None:
    """After a redemption taken offline is recorded: the fen the store's tills took so that chain day, this one
    included (the bridge applies a store's events in order, one batch at a time); past the allowance, reported."""
    day = chain_day_start_ms(e.wall_ms)
    taken = await conn.fetchval(
        "select coalesce(sum(saving_fen), 0)::bigint from coupons where status = 'redeemed' and channel = 'offline' "
        "and store_id = $1 and reserved_for is null and redeemed_ms >= $2 and redeemed_ms < $3",
        e.store_id, day, day + DAY_MS)
    breach = coupon_claims.allowance_breach(e.store_id, chain_day(e.wall_ms), taken)
    if breach:
        await _conflict(conn, e, "over_allowance", None,
                        f"{breach}: coupon {e.code} on sale {e.sale_id} gave {e.saving_fen} fen; believed (the goods "
                        "left), reported")


async def _conflict(conn, e: CouponRedeemed, kind: str, first: str | None, detail: str) -> None:
    await conn.execute(
        """insert into coupon_conflicts (event_id, code, store_id, sale_id, first_redeemed_by, detail, wall_ms,
               recorded_ms, kind) values ($1, $2, $3, $4, $5, $6, $7,
               (extract(epoch from clock_timestamp()) * 1000)::bigint, $8)
           on conflict (event_id) do nothing""", e.event_id, e.code, e.store_id, e.sale_id, first, detail, e.wall_ms,
        kind)
    log.warning("coupon conflict (%s): %s", kind, detail)


def _stores(body) -> list[str]:
    return list((json.loads(body) if isinstance(body, str) else body).get("stores", []))
