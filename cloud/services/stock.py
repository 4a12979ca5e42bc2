"""Stock as the cloud sees it: a store's positions (escrow, reservations) beside its last reported on-hand, the
stores' liveness and lag, and every actor's invariant audit with the money journal's ("every charge is matched by a
paid order or a refund")."""
from __future__ import annotations

import asyncio
import logging

from cloud.messaging.lots import store_lots
from cloud.messaging.transfers import incoming
from cloud.services.flash_orders import rows_audit
from cloud.services.payments import movement
from protocol.money_saga import PAID_STATUSES, EndedMoney, unmatched_charges, unreturned_extras

log = logging.getLogger("freshmesh.cloud")


SALES_AUDITED_AFTER_END_MS = 24 * 3600_000


class StockViews:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def liveness(self, store_id: str | None = None) -> list[dict]:
        """Every store's (or one store's) liveness and lag; empty when the registry cannot answer (it is soft)."""
        try:
            return await self.cloud.actors.registry.view(self.cloud.now_ms(), store_id)
        except Exception as exc:  # noqa: BLE001 - liveness is soft: answer without it rather than fail
            log.warning("store registry unavailable: %s", exc)
            return []

    async def store_view(self, store_id: str, sku: str | None = None) -> dict:
        positions = {p["sku"]: p for p in await self.cloud.actors.stock_pool.positions(store_id, sku)}
        on_hand = {r["sku"]: r for r in await self.cloud.db.fetch(
            "select sku, on_hand, updated_ms from store_stock where store_id = $1 and ($2::text is null or sku = $2)",
            store_id, sku)}
        lots = await store_lots(self.cloud.db, store_id, sku)
        arriving = await incoming(self.cloud.db, store_id)  # dispatched to it by other stores, not received yet
        live = next(iter(await self.liveness(store_id)), {})  # one store's liveness, not all of them
        skus = sorted(set(positions) | set(on_hand) | {k for k in arriving if sku is None or k == sku})
        return {"store_id": store_id, "lag_ms": live.get("lag_ms"), "lag_p99_ms": live.get("lag_p99_ms"),
                "online": live.get("online", False), "outbox_depth": live.get("outbox_depth"),
                "stock": [{"sku": sku, "on_hand": on_hand[sku]["on_hand"] if sku in on_hand else None,
                           "escrow": positions.get(sku, {}).get("escrow", 0),
                           "reserved": positions.get(sku, {}).get("pending", 0),
                           "confirmed": positions.get(sku, {}).get("confirmed", 0),
                           "available_online": positions.get(sku, {}).get("available", 0),
                           "presale": positions.get(sku, {}).get("presale", True),
                           # a marketplace's share of the escrow (its orders reserve only from it; the figures
                           # above less these are the mall's), when HQ set one
                           **({"channels": {ch: {"escrow": v["escrow"], "reserved": v["pending"],
                                                 "confirmed": v["confirmed"], "available": v["available"]}
                                            for ch, v in positions[sku]["channels"].items()}}
                              if "channels" in positions.get(sku, {}) else {}),
                           "lots": lots.get(sku, []), "in_transit": arriving.get(sku, 0)} for sku in skus]}

    async def audit(self) -> dict:
        """Every stock pool's and member ledger's invariant audit, and every flash sale's that is live or ended within
        `SALES_AUDITED_AFTER_END_MS` (an older sale's gate sells nothing more: auditing every sale ever would wake
        each one's actor, and grow without end), with its units sold against its order rows; `violations` is empty
        when all hold."""
        since = self.cloud.now_ms() - SALES_AUDITED_AFTER_END_MS
        sales = [r["sale_id"] for r in await self.cloud.db.fetch(
            "select sale_id from flash_sales where coalesce((config->>'ends_ms')::bigint, 0) > $1 "
            "and coalesce(config->>'actors', $2) = $2", since, self.cloud.shards.prefix)]
        report = await self.cloud.actors.audit(sales)
        for sale_id, problems in zip(sales, await asyncio.gather(*(rows_audit(self.cloud, s) for s in sales)),
                                     strict=True):
            report[f"flash sale {sale_id} order rows"] = problems
        violations = [f"{n}: {p}" for n, problems in report.items() for p in problems]
        violations += [f"money: {p}" for p in await self.money_audit()]
        return {"actors": len(report), "violations": violations}

    async def money_audit(self) -> list[str]:
        """"Every charge is matched by a paid (or fulfilled) order or a refund": stored-value charges (the
        MemberLedger's `sv:` transfers) and provider charges alike, from the money journal. Only the suspects are
        read (charges done whose order is not paid, failed refunds, refunds of paid orders, money nothing credits
        that is not given back yet); `unmatched_charges` decides."""
        rows = await self.cloud.db.fetch(
            """select m.*, o.status as order_status from money_movements m left join orders o using (order_id)
               where (m.kind = 'charge' and m.state = 'done' and coalesce(o.status, '') <> all($1::text[])
                      and not exists (select 1 from money_movements r where r.movement_id = 'refund:' || m.order_id
                                      and r.state = 'done'))
                  or (m.kind = 'refund' and m.state = 'failed')
                  or (m.movement_id = 'refund:' || m.order_id and m.state = 'done'
                      and o.status = any($1::text[]))
                  or (m.movement_id like 'return:%' and m.state = 'requested')
               limit 1000""", list(PAID_STATUSES))
        orders = {r["order_id"]: r["order_status"] or "missing" for r in rows}
        problems = unmatched_charges(orders, [(r["order_id"], movement(r)) for r in rows], self.cloud.now_ms())
        over = await self.cloud.db.fetch(
            """select c.order_id, c.charged as amount_fen, sum(r.amount_fen)::bigint as refunded
               from (select c.order_id, c.amount_fen + coalesce((select sum(x.amount_fen) from money_movements x
                            where x.order_id = c.order_id and x.kind = 'charge' and x.state = 'done'
                              and x.movement_id like 'charge:' || c.order_id || ':%'), 0) as charged
                     from money_movements c where c.movement_id = 'charge:' || c.order_id and c.state = 'done') c
                    join money_movements r on r.order_id = c.order_id and r.kind = 'refund'
                    and r.state <> 'failed' and r.movement_id like 'refund:%'
               group by c.order_id, c.charged having sum(r.amount_fen) > c.charged limit 100""")  # extras count too
        return problems + [f"order {r['order_id']}: refunds give back {r['refunded']} fen of a {r['amount_fen']} fen "
                           f"charge" for r in over] + await self._extras_audit()

    async def _extras_audit(self) -> list[str]:
        """Extra charges done on orders that ended: the refunds must give them back too (`unreturned_extras`)."""
        rows = await self.cloud.db.fetch(
            """select x.order_id, o.status, sum(x.amount_fen)::bigint as extras_fen,
                      (select coalesce(sum(m.amount_fen), 0) from money_movements m where m.order_id = x.order_id
                         and m.kind = 'charge' and m.state = 'done' and (m.movement_id = 'charge:' || x.order_id
                         or m.movement_id like 'charge:' || x.order_id || ':%'))::bigint as charged_fen,
                      (select coalesce(sum(m.amount_fen), 0) from money_movements m where m.order_id = x.order_id
                         and m.kind = 'refund' and m.state = 'done' and (m.movement_id = 'refund:' || x.order_id
                         or m.movement_id like 'refund:' || x.order_id || ':%'))::bigint as refunded_fen,
                      (select max(m.updated_ms) from money_movements m where m.order_id = x.order_id)::bigint as last_ms
               from money_movements x join orders o using (order_id)
               where x.kind = 'charge' and x.state = 'done' and x.movement_id like 'charge:' || x.order_id || ':%'
                 and o.status <> all($1::text[])
               group by x.order_id, o.status limit 100""", list(PAID_STATUSES))
        return unreturned_extras([EndedMoney(**dict(r)) for r in rows], self.cloud.now_ms())
