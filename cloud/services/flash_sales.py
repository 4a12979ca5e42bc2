"""Flash-sale orders on the hot path: no Ray call and no database transaction per request.

Each API process keeps a LeaseHolder per sale: a request is admitted (or refused: sold out, throttled, over the
member's limit) locally at once; admitted requests wait for the next sync, which every few milliseconds commits
all of them to the FlashSaleGate in one Ray call (durable there: the gate journals it) and writes their order rows
in one INSERT (group commit), then answers them together. The sync also refills the lease before it runs dry.

Answers are the order (accepted) or a `Refusal` (sold_out, over_limit, throttled, not_started, ended, key_reused,
unavailable); the HTTP layer gives them their status codes.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import TYPE_CHECKING

from actors.flash_sale import LeaseHolder, LeaseSync, OpenSale
from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal, RefusalKind
from protocol.clock import to_rfc3339

if TYPE_CHECKING:
    from cloud.runtime.clients import FlashSaleClient

SYNC_INTERVAL_MS = 3
IDLE_SYNC_MS = 1_000  # an idle worker still syncs this often: fresh sold-out news, and the gate sees it alive
LEASE_BLOCK = 200
ANSWER_CACHE_MAX = 200_000
SYNC_FAILURE_PAUSE_S = 0.2  # after a failed sync, before the next (its waiting requests were answered 503)
log = logging.getLogger("freshmesh.flash")

# The gate's or the lease holder's verdict -> (the refusal's kind, what to tell the customer).
VERDICT_REFUSALS: dict[str, tuple[RefusalKind, str]] = {
    "sold_out": ("sold_out", "sold out"),
    "over_limit": ("over_limit", "over this member's limit for the sale"),
    "throttled": ("throttled", "too many requests for this sale right now; retry shortly"),
    "not_started": ("not_started", "the sale has not started"),
    "ended": ("ended", "the sale has ended"),
    "conflict": ("key_reused", "Idempotency-Key was already used with a different body"),
    "invalid": ("invalid", "invalid flash order"),
    "unavailable": ("unavailable", "busy; retry with the same Idempotency-Key"),
}


class SaleWorker:
    """One sale as seen from one API process."""

    def __init__(self, flash: FlashSales, sale_id: str, holder: LeaseHolder, gate: FlashSaleClient) -> None:
        self.flash, self.sale_id, self.holder, self.gate = flash, sale_id, holder, gate
        self.waiting: dict[str, asyncio.Future] = {}
        self.orders: dict[str, tuple[str, int, str]] = {}  # order id -> (member, qty, idempotency key)
        self.answers: dict[str, dict] = {}  # idempotency key -> the accepted order, for retries
        self.syncs = 0
        self.last_sync_ms = 0
        self.task = asyncio.create_task(self._loop())

    async def order(self, member: str, qty: int, key: str) -> dict:
        answer = self.answers.get(key)
        if answer is not None:
            if answer["qty"] != qty:  # the same key for another request: refused, never the first one's answer
                raise self._refusal("conflict")
            return answer
        order_id = "F" + hashlib.blake2b(f"{self.sale_id}/{key}".encode(), digest_size=12).hexdigest().upper()
        pending = self.orders.get(order_id)
        if pending is not None and pending[1] != qty:  # the same key for another request, while the first waits
            raise self._refusal("conflict")
        now = self.flash.cloud.now_ms()
        verdict = self.holder.admit(order_id, member, qty, now)
        if verdict != "admitted":
            raise self._refusal(verdict)
        if order_id in self.waiting:  # the same key twice at once: both wait for the one verdict
            return await asyncio.shield(self.waiting[order_id])
        fut = asyncio.get_running_loop().create_future()
        self.waiting[order_id] = fut
        self.orders[order_id] = (member, qty, key)
        return await asyncio.shield(fut)

    def _refusal(self, verdict: str) -> Refusal:
        kind, detail = VERDICT_REFUSALS[verdict]
        return Refusal(kind, f"flash sale {self.sale_id}: {detail}")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL_MS / 1000)
            idle = not self.holder.pending and self.holder.units >= self.holder.block // 2
            if idle and self.flash.cloud.now_ms() - self.last_sync_ms < IDLE_SYNC_MS:
                continue
            try:
                await self._sync()
            except Exception as exc:  # noqa: BLE001 - keep the loop alive; waiting requests get a 503
                log.warning("flash sale %s sync failed: %s", self.sale_id, exc)
                for order_id in self.holder.abandon_in_flight():
                    self.orders.pop(order_id, None)
                    fut = self.waiting.pop(order_id, None)
                    if fut and not fut.done():
                        fut.set_exception(self._refusal("unavailable"))
                await asyncio.sleep(SYNC_FAILURE_PAUSE_S)

    async def _sync(self) -> None:
        self.syncs += 1
        self.last_sync_ms = self.flash.cloud.now_ms()
        command = self.holder.sync_command(f"{self.flash.worker_id}:{self.syncs}")
        in_flight = [sale.order_id for sale in command.sales]
        verdicts = self.holder.take_results(await self.gate.sync(command))
        for order_id in in_flight:  # a sale the gate did not judge (an error answer) is retried by the client
            verdicts.setdefault(order_id, "unavailable")
        accepted = [o for o, v in verdicts.items() if v == "accepted"]
        if accepted:
            try:
                await self._record(accepted)
            except Exception as exc:  # noqa: BLE001 - sold at the gate but not recorded: the retry records it
                log.warning("flash sale %s: order rows not written (%s); answering 503", self.sale_id, exc)
                for order_id in accepted:
                    member, qty, _ = self.orders.get(order_id, (None, 0, None))
                    if member is not None:
                        self.holder.members[member] = max(self.holder.members.get(member, 0) - qty, 0)
                    verdicts[order_id] = "unavailable"
        for order_id, verdict in verdicts.items():
            fut = self.waiting.pop(order_id, None)
            entry = self.orders.pop(order_id, None)
            if fut is None or fut.done():
                continue
            if entry is None:  # not reached: a waiting future's order entry is set, and dropped, with it
                fut.set_exception(self._refusal("unavailable"))
                continue
            member, qty, key = entry
            if verdict == "accepted":
                answer = self._body(order_id, member, qty)
                self._remember(key, answer)
                fut.set_result(answer)
            else:
                fut.set_exception(self._refusal(verdict))

    def _body(self, order_id: str, member: str, qty: int) -> dict:
        status = self.holder.status
        return {"order_id": order_id, "sale_id": self.sale_id, "status": "accepted", "member_id": member, "qty": qty,
                "price_fen": status["price_fen"], "total_fen": status["price_fen"] * qty, "sku": status["sku"]}

    def _remember(self, key: str, answer) -> None:
        if len(self.answers) >= ANSWER_CACHE_MAX:
            self.answers.clear()
        self.answers[key] = answer

    async def _record(self, accepted: list[str]) -> None:
        """One INSERT for the whole sync: the order rows (the gate's journal already holds the sale)."""
        now, status = self.flash.cloud.now_ms(), self.holder.status
        price, sku = status["price_fen"], status["sku"]
        ids, keys, members, lines, totals = [], [], [], [], []
        for order_id in accepted:
            member, qty, key = self.orders[order_id]
            ids.append(order_id)
            keys.append(f"flash:{self.sale_id}:{key}")
            members.append(member)
            lines.append(json.dumps([{"sku": sku, "qty": qty, "amount_fen": price * qty}]))
            totals.append(price * qty)
        await self.flash.cloud.db.execute(
            """insert into orders (order_id, idempotency_key, kind, status, member_id, allocation, lines, total_fen,
                   created_ms, updated_ms)
               select o, k, 'flash', 'reserved', m, $5::jsonb, l::jsonb, t, $6, $6
               from unnest($1::text[], $2::text[], $3::text[], $4::text[], $7::bigint[]) as x(o, k, m, l, t)
               on conflict do nothing""",
            ids, keys, members, lines, json.dumps({"sale": self.sale_id}), now, totals)


class FlashSales:
    def __init__(self, cloud, worker_id: str) -> None:
        self.cloud, self.worker_id = cloud, worker_id
        self.sales: dict[str, SaleWorker] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    async def create(self, sale_id: str, by: Operator | None = None, **config) -> dict:
        """Open a sale; `by`: the operator opening it (the audit log records who, with the sale's settings)."""
        result = await self.cloud.actors.flash_sale(sale_id).open(OpenSale(id="open", sale_id=sale_id, **config))
        if result.status == "error":
            raise Refusal("invalid", result.reason)
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            created = await conn.fetchval("insert into flash_sales (sale_id, config, created_ms) values ($1, $2, $3) "
                                          "on conflict do nothing returning sale_id", sale_id, json.dumps(config), now)
            if created is not None and by is not None:
                await record(conn, now, by, "flash_sale.create", f"flash_sale:{sale_id}", None, config)
        return await self.status(sale_id)

    async def _known(self, sale_id: str) -> None:
        if not await self.cloud.db.fetchval("select 1 from flash_sales where sale_id = $1", sale_id):
            raise Refusal("not_found", f"no flash sale {sale_id}")

    async def status(self, sale_id: str) -> dict:
        await self._known(sale_id)
        s = await self.cloud.actors.flash_sale(sale_id).status()
        return {"sale_id": sale_id, "sku": s["sku"], "quantity": s["quantity"], "sold": s["sold"],
                "remaining": s["remaining"], "leased": s["leased"], "price_fen": s["price_fen"],
                "per_member_limit": s["per_member_limit"], "rate_per_s": s["rate_per_s"],
                "starts_at": to_rfc3339(s["starts_ms"]), "ends_at": to_rfc3339(s["ends_ms"]),
                "members": s["members"], "rejected_over_limit": s["rejected_over_limit"]}

    async def worker(self, sale_id: str) -> SaleWorker:
        worker = self.sales.get(sale_id)
        if worker is not None:
            return worker
        await self._known(sale_id)  # before a lock is made for it: unknown ids named by clients leave nothing behind
        lock = self._opening.setdefault(sale_id, asyncio.Lock())
        async with lock:
            if sale_id not in self.sales:
                gate = self.cloud.actors.flash_sale(sale_id)
                first = (await gate.sync(LeaseSync(id=f"{self.worker_id}:init", worker=self.worker_id,
                                               want=LEASE_BLOCK))).settled
                if first.status != "ok":
                    raise Refusal("unavailable", f"flash sale {sale_id}: the gate refused this worker ({first.reason})")
                holder = LeaseHolder(self.worker_id, first.values, self.cloud.now_ms(), block=LEASE_BLOCK)
                self.sales[sale_id] = SaleWorker(self, sale_id, holder, gate)
        return self.sales[sale_id]

    async def order(self, sale_id: str, member: str, qty: int, key: str) -> dict:
        """The accepted order, or a Refusal: the one flash-order path behind both HTTP shells. Idempotency keys are
        the member's own: another member's request with the same key is another order."""
        return await (await self.worker(sale_id)).order(member, qty, f"{member}/{key}")

    async def close(self) -> None:
        for worker in self.sales.values():
            worker.task.cancel()
