"""What a believed till return undoes of its sale's coupons, in the cloud - the coupons' one authority
(`protocol.return_promotions` decides; this applies it).

Guarantees:
- Runs in the bridge's transaction, after the batch's returns, sales and coupons are recorded (`record`): so a sale,
  its coupon redemption, its trigger coupon and its return arriving in one batch (an offline store catching up)
  are seen in that order, and everything here commits with the return's event id - a redelivered return changes
  nothing more (each effect is also keyed by (event id, code)).
- A sale's trigger coupons are remembered with the sale (`till_sale_coupons`, from the coupons issued under the
  sale's event id), so a return in any later batch finds them.
- A return that brings its till sale back whole gives back each coupon the sale redeemed (`redeemed_by` =
  `store:<store>:<sale>`: a coupon the sale lost to another channel - a conflict - is not the sale's to give back):
  `issued` again in one conditional UPDATE if the return was within the coupon's window, else it stays redeemed and
  the effect says why. A partial return changes no coupon (its refund is the lines' share of what was paid).
- A return that leaves the sale keeping less than a trigger coupon's minimum voids that coupon if it is still
  unused (`issued` -> `voided`, one conditional UPDATE); one already reserved or redeemed is kept by the member and
  reported as a coupon conflict (`GET /operator/coupons/conflicts`, counted in `/audit`) - once per coupon, never
  silently lost. Every effect is listed at `GET /operator/coupons/returns`.
- A till return of a sale paid partly with points gives the member back the points part of its refund
  (`give_points`, before the bridge records the batch, like a stored-value refund): journaled first, then
  `GrantPoints` under `till-return-pts:<return id>` (once), and never more in all, over the sale's returns, than the
  points the cloud took from the member for that sale (its captured hold, or what it believed of an offline claim).
  Fewer than the return asked (what its receipt printed) is listed with the coupon effects (`points_short`, no code,
  in the same transaction), saying both figures.
"""
from __future__ import annotations

import json
import logging

from actors.member_ledger import GrantPoints
from cloud.services.coupons import ISSUED_AGAIN
from protocol import return_promotions as rp
from protocol import returns as rules
from protocol.messages import Message, SaleCommitted
from protocol.points import points_for_fen
from protocol.return_messages import GoodsReturned

log = logging.getLogger("freshmesh.returns")
EFFECTS_PAGE_MAX = 200


async def record(conn, events: list[Message]) -> None:
    """The batch's believed sales' trigger coupons remembered, and its believed till returns' coupon effects."""
    sales = [e for e in events if isinstance(e, SaleCommitted) and e.member_id]
    if sales:
        await conn.executemany(
            "insert into till_sale_coupons (sale_id, store_id, code) select $1, $2, code from coupons "
            "where source = $3 and why = 'till_spend' on conflict do nothing",
            [(e.sale_id, e.store_id, f"sale:{e.event_id}") for e in sales])
    for e in events:
        if isinstance(e, GoodsReturned) and e.sale_id:
            await _undo(conn, e)


async def _undo(conn, e: GoodsReturned) -> None:
    sale = await conn.fetchrow("select store_id, lines, total_fen, returned_fen from till_sales where sale_id = $1",
                               e.sale_id)
    if sale is None:  # believed returns name a recorded sale (or one of the batch, recorded before this)
        return
    back = [tuple(x) for r in await conn.fetch("select lines from till_returns where sale_id = $1", e.sale_id)
            for x in json.loads(r["lines"])]
    sold = rules.shares([tuple(x) for x in json.loads(sale["lines"])], sale["total_fen"])
    if rules.all_returned(sold, rules.returned_so_far(back), []):
        await _give_back(conn, e)
    await _triggers(conn, e, sale["total_fen"], sale["returned_fen"])


async def _give_back(conn, e: GoodsReturned) -> None:
    by = f"store:{e.store_id}:{e.sale_id}"
    for row in await conn.fetch("select code, valid_until_ms from coupons where redeemed_by = $1 and status = "
                                "'redeemed' order by code", by):
        effect, why = rp.coupon_back(row["valid_until_ms"], e.wall_ms)
        if effect == rp.COUPON_BACK:
            await conn.execute(
                f"update coupons set {ISSUED_AGAIN} where code = $1 and status = 'redeemed' and redeemed_by = $2",  # noqa: S608 - fixed text
                row["code"], by)
        await _effect(conn, e, row["code"], effect, why)


async def _triggers(conn, e: GoodsReturned, total_fen: int, returned_fen: int) -> None:
    rows = await conn.fetch(
        """select c.code, c.status, c.redeemed_by, c.reserved_for, d.trigger_min_fen from till_sale_coupons t
               join coupons c using (code) join coupon_definitions d using (definition_id)
           where t.sale_id = $1 and d.trigger_min_fen is not null
             and not exists (select 1 from return_coupon_effects x where x.code = c.code
                             and x.effect = any($2::text[]))
           order by c.code""", e.sale_id, [rp.TRIGGER_VOIDED, rp.TRIGGER_USED])
    for row in rows:
        outcome = rp.trigger_outcome(row["status"], total_fen, returned_fen, row["trigger_min_fen"])
        if outcome is None:
            continue
        effect, why = outcome
        if effect == rp.TRIGGER_VOIDED:
            voided = await conn.fetchval("update coupons set status = 'voided' where code = $1 and status = 'issued' "
                                         "returning code", row["code"])
            if voided is None:  # cannot be: the row was read in this transaction; kept honest all the same
                effect, why = rp.TRIGGER_USED, f"{why} (it changed meanwhile: reported)"
        if effect == rp.TRIGGER_USED:
            first = row["redeemed_by"] or row["reserved_for"]
            detail = (f"till-spend coupon {row['code']} of sale {e.sale_id} at {e.store_id}: return {e.return_id} - "
                      f"{why} (used by {first})")
            await conn.execute(
                """insert into coupon_conflicts (event_id, code, store_id, sale_id, first_redeemed_by, detail, wall_ms,
                       recorded_ms, kind) values ($1, $2, $3, $4, $5, $6, $7,
                       (extract(epoch from clock_timestamp()) * 1000)::bigint, 'trigger_used')
                   on conflict (event_id) do nothing""",
                f"{e.event_id}:{row['code']}", row["code"], e.store_id, e.sale_id, first, detail[:1000], e.wall_ms)
            log.warning("coupon conflict: %s", detail)
        await _effect(conn, e, row["code"], effect, why)


async def _effect(conn, e: GoodsReturned, code: str, effect: str, detail: str) -> None:
    await conn.execute(
        """insert into return_coupon_effects (event_id, code, return_id, store_id, sale_id, effect, detail, wall_ms,
               recorded_ms) values ($1, $2, $3, $4, $5, $6, $7, $8, (extract(epoch from clock_timestamp()) * 1000)::bigint)
           on conflict do nothing""", e.event_id, code, e.return_id, e.store_id, e.sale_id, effect, detail, e.wall_ms)


async def effects(db, sale_id: str | None = None, limit: int = 100) -> dict:
    """`GET /operator/coupons/returns`: what returns did to coupons, newest first (`sale_id`: that sale's)."""
    rows = await db.fetch("select * from return_coupon_effects where $1::text is null or sale_id = $1 "
                          "order by recorded_ms desc, code limit $2", sale_id, max(1, min(limit, EFFECTS_PAGE_MAX)))
    return {"effects": [{"code": r["code"], "effect": r["effect"], "detail": r["detail"], "sale_id": r["sale_id"],
                         "return_id": r["return_id"], "store_id": r["store_id"], "at_ms": r["wall_ms"]}
                        for r in rows]}


async def give_points(cloud, e: GoodsReturned) -> int:
    """The points part of a till sale's return back to its member (see the module's guarantees): the points given."""
    asked = points_for_fen(sum(p.amount_fen for p in e.refunds if p.method == "points"))
    if not asked or not e.member_id:
        return 0
    db = cloud.db
    row = await db.fetchrow("select * from till_return_points where return_id = $1", e.return_id)
    if row is None:
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(hashtext($1))", f"till-return-pts:{e.sale_id}")
            taken = await conn.fetchval(
                "select coalesce(sum(case when state = 'captured' then points when state = 'claimed' then believed "
                "else 0 end), 0)::bigint from till_points where sale_id = $1 and store_id = $2", e.sale_id, e.store_id)
            given = await conn.fetchval("select coalesce(sum(points), 0)::bigint from till_return_points "
                                        "where sale_id = $1", e.sale_id)
            points = max(min(asked, int(taken) - int(given)), 0)
            if points < asked:  # the till's receipt printed `asked`: the operator sees what the member got
                detail = (f"return {e.return_id} of sale {e.sale_id}: {asked} points asked back, {points} given (the "
                          f"cloud took {taken} for the sale, gave back {given} before)")
                log.warning("%s", detail)
                await _effect(conn, e, "", rp.POINTS_SHORT, detail)
            await conn.execute(
                "insert into till_return_points (return_id, sale_id, member_id, points, state, created_ms) "
                "values ($1, $2, $3, $4, $5, $6) on conflict do nothing", e.return_id, e.sale_id, e.member_id, points,
                "requested" if points else "done", cloud.now_ms())
        row = await db.fetchrow("select * from till_return_points where return_id = $1", e.return_id)
    if row["state"] == "requested":
        result = await cloud.actors.member_ledger.send(GrantPoints(
            id=f"till-return-pts:{e.return_id}", member=row["member_id"], points=row["points"],
            why=f"sale {e.sale_id} returned at {e.store_id} ({e.return_id})"[:200]))
        if not result.succeeded:  # the bridge applies the event again (in place) until it does
            raise RuntimeError(f"points of return {e.return_id}: {result.settled.status} {result.settled.reason}")
        await db.execute("update till_return_points set state = 'done' where return_id = $1", e.return_id)
    return int(row["points"])
