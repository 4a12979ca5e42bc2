"""Flash-sale orders on the hot path: no Ray call and no database transaction per request.

Each API process keeps a LeaseHolder per sale: a request is admitted (or refused: sold out, throttled, over the
member's limit) locally at once, or waits briefly for units another worker hands back; admitted requests wait for
the next sync, which every few milliseconds commits all of them to the FlashSaleGate in one Ray call (durable
there: the gate journals it) and writes their order rows in one INSERT (group commit), then answers them together.
The sync also refills the lease before it runs dry, hands spare units back, and tells the gate which rows failed.

Guarantees:
- A unit is sold only with its order row: a row the database refuses is unsold in the next sync; one whose write
  has an unknown outcome (the database went away) stays sold until the row is looked up, and is unsold if missing;
  a sale accepted after every request waiting for it gave up (deadline, 503) gets no row and is unsold.
- A sync whose answer was lost is sent again, unchanged, before any other (its requests were answered 503; a
  same-key retry waits for its verdict).
- A same-key retry gets the bought order from any worker: from this worker's memory, from the gate (a retry
  before sell-out is a duplicate the gate accepts again), or, once sold out or ended, from the order's row (looked
  up in batches until this worker holds every sold order's id, read once all the units sold have their rows).

Answers are the order (accepted) or a `Refusal` (sold_out, over_limit, throttled, not_started, ended, key_reused,
unavailable); the HTTP layer gives them their status codes.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import TYPE_CHECKING

from actors.flash_lease import LeaseHolder
from actors.flash_sale import AdmittedSale, LeaseSync, OpenSale
from cloud.services.flash_orders import BoughtOrders, FlashRows
from cloud.services.flash_stores import FlashStores
from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal, RefusalKind
from protocol.clock import to_rfc3339
from protocol.ids import deriver, is_id

if TYPE_CHECKING:
    from cloud.runtime.clients import FlashSaleClient

SYNC_INTERVAL_MS = 3
LEASE_BLOCK = 200
ANSWER_CACHE_MAX = 200_000
SYNC_FAILURE_PAUSE_S = 0.2  # after a failed sync, before it is sent again (its waiting requests were answered 503)
SOLD_ORDERS_RETRY_MS = 100  # sold out, but not every sold unit has its row yet: the sale's rows are read again
UNSURE_CHECK_MS = 200  # rows whose write had an unknown outcome are looked up this often until the database answers
STOP_WAIT_S = 2.0  # at shutdown, for the sync under way and the lease's return
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
        self.rows = FlashRows(lambda: flash.cloud.db, sale_id)
        self._derive = deriver(sale_id) if is_id(sale_id) else None  # order ids, as derived_id(sale_id, key)
        self.waiting: dict[str, asyncio.Future] = {}  # order id -> its verdict, for the requests waiting on it
        self.listeners: dict[str, int] = {}  # order id -> requests still waiting on it (none: a sale not to record)
        self.orders: dict[str, tuple[str, int, str]] = {}  # order id -> (member, qty, key) until its verdict
        self.answers: dict[str, dict] = {}  # idempotency key -> the accepted order, for retries
        self.syncs = 0
        self.last_sync_ms = 0
        self.last_check_ms = 0
        self.stopping = False
        # once sold out: every sold order's id -> qty, complete while the gate's (sold, returned) counts are
        # `sold_orders_for` (units returned and sold again leave `sold` as it was, but not the orders)
        self.sold_orders: dict[str, int] = {}
        self.sold_orders_for: tuple[int, int] = (-1, -1)
        self._loading: asyncio.Task | None = None
        self._loaded_ms = 0
        self.task = asyncio.create_task(self._loop())

    async def order(self, member: str, qty: int, key: str) -> dict:
        answer = self.answers.get(key)
        if answer is not None:
            if answer["qty"] != qty:  # the same key for another request: refused, never the first one's answer
                raise self._refusal("conflict")
            return answer
        order_id = self._order_id(key)
        entry = self.orders.get(order_id)
        if entry is not None:  # the same key is on its way here already: one verdict for both
            if entry[1] != qty:
                raise self._refusal("conflict")
            return await self._verdict(order_id)
        verdict = self.holder.admit(order_id, member, qty, self.flash.cloud.now_ms())
        if verdict in ("sold_out", "ended"):
            if self.sold_orders_for == self._sold_mark() and order_id not in self.sold_orders:
                raise self._refusal(verdict)  # the common case, as fast as before: never bought, known here
            return await self._bought_before(order_id, member, qty, key, verdict)
        if verdict not in ("admitted", "queued"):
            raise self._refusal(verdict)
        self.orders[order_id] = (member, qty, key)
        return await self._verdict(order_id)

    def _order_id(self, key: str) -> str:
        """The same in every worker for the same key: an id like any order's (the event ids sent to its store derive
        from it), made from the sale's id and the key; "F…" for a sale whose id is not one (older sales)."""
        if self._derive is not None:
            return self._derive(key)
        return "F" + hashlib.blake2b(f"{self.sale_id}/{key}".encode(), digest_size=12).hexdigest().upper()

    async def _verdict(self, order_id: str) -> dict:
        fut = self.waiting.get(order_id)
        if fut is None:
            fut = self.waiting[order_id] = asyncio.get_running_loop().create_future()
        self.listeners[order_id] = self.listeners.get(order_id, 0) + 1
        try:
            answer: dict = await asyncio.shield(fut)
            return answer
        finally:  # cancelled (the deadline) or answered: either way one listener fewer
            left = self.listeners.pop(order_id, 1) - 1
            if left:
                self.listeners[order_id] = left

    async def _bought_before(self, order_id: str, member: str, qty: int, key: str, verdict: str) -> dict:
        """Sold out (or ended) here: a retry of an order bought through another worker gets that order, from its
        row; anyone else the refusal. Once every sold unit has its row, this worker holds all of the sale's order
        ids (one query) and answers without the database."""
        sold = self._sold_mark()
        if self.sold_orders_for == sold:
            bought_qty = self.sold_orders.get(order_id)
        else:
            self._load_sold_orders(sold)
            found = await self.flash.bought.find(order_id)
            bought_qty = found[1] if found is not None else None
        if bought_qty is None:
            raise self._refusal(verdict)
        if bought_qty != qty:
            raise self._refusal("conflict")
        answer = self._body(order_id, member, qty)
        self._remember(key, answer)
        return answer

    def _sold_mark(self) -> tuple[int, int]:
        return self.holder.status["sold"], self.holder.status.get("returned", 0)

    def _load_sold_orders(self, sold: tuple[int, int]) -> None:
        """In the background, one at a time: every order row of the sale, kept if they are all of its `sold` units
        (rows are never more than the units sold, so as many units are exactly the sold orders)."""
        now = self.flash.cloud.now_ms()
        if (self._loading is not None and not self._loading.done()) or now - self._loaded_ms < SOLD_ORDERS_RETRY_MS:
            return
        self._loaded_ms = now

        async def load() -> None:
            try:
                rows = await self.rows.sold_orders()
            except Exception as exc:  # noqa: BLE001 - look-ups go on one by one meanwhile
                log.warning("flash sale %s: sold orders not loaded (%s)", self.sale_id, exc)
                return
            if sum(rows.values()) == sold[0]:
                self.sold_orders, self.sold_orders_for = rows, sold
        self._loading = asyncio.create_task(load())

    def _refusal(self, verdict: str) -> Refusal:
        kind, detail = VERDICT_REFUSALS[verdict]
        return Refusal(kind, f"flash sale {self.sale_id}: {detail}")

    def _answer(self, order_id: str, verdict: str, answer: dict | None = None) -> None:
        """Tell the requests waiting on this order (and forget it here)."""
        self.orders.pop(order_id, None)
        fut = self.waiting.pop(order_id, None)
        if fut is None or fut.done():
            return
        if answer is not None:
            fut.set_result(answer)
        elif self.listeners.get(order_id):
            fut.set_exception(self._refusal(verdict))
        else:  # nobody waits on it any more: nothing to tell (and no "exception never retrieved")
            fut.cancel()

    async def _loop(self) -> None:
        while not self.stopping:
            await asyncio.sleep(SYNC_INTERVAL_MS / 1000)
            now = self.flash.cloud.now_ms()
            for order_id, verdict in self.holder.drain_queue(now).items():  # waited too long, or sold out
                if verdict != "admitted":
                    self._answer(order_id, verdict)
            if not self.holder.needs_sync(now, self.last_sync_ms):
                continue
            try:
                await self._sync()
            except Exception as exc:  # noqa: BLE001 - keep the loop alive; waiting requests get a 503
                log.warning("flash sale %s sync failed: %s", self.sale_id, exc)
                for sale in self.holder.in_flight:  # the sync is sent again; its requests hear 503 now
                    entry = self.orders.get(sale.order_id)
                    self._answer(sale.order_id, "unavailable")
                    if entry is not None:  # kept until the verdict: a same-key retry waits for it
                        self.orders[sale.order_id] = entry
                await asyncio.sleep(SYNC_FAILURE_PAUSE_S)

    async def _sync(self) -> None:
        now = self.last_sync_ms = self.flash.cloud.now_ms()
        self.syncs += 1
        command = self.holder.sync_command(f"{self.flash.worker_id}:{self.syncs}", now)
        verdicts = self.holder.take_results(await self.gate.sync(command))
        for sale in command.sales:  # a sale the gate did not judge (an error answer) is retried by the client
            verdicts.setdefault(sale.order_id, "unavailable")
        await self._record(command, verdicts)
        for order_id, verdict in verdicts.items():
            if verdict not in ("accepted", "again"):  # again: confirmed in the next sync, answered then
                self._answer(order_id, verdict)
        for order_id, verdict in self.holder.drain_queue(self.flash.cloud.now_ms()).items():
            if verdict != "admitted":
                self._answer(order_id, verdict)
        await self._check_unsure()

    async def _record(self, command: LeaseSync, verdicts: dict[str, str]) -> None:
        """The accepted sales' rows in one INSERT, then their answers. A sale nobody waits for any more gets no
        row: it is unsold (its requests were told 503, or gave up)."""
        wanted: list[tuple[AdmittedSale, str]] = []
        unwanted: list[AdmittedSale] = []
        for sale in command.sales:
            if verdicts.get(sale.order_id) != "accepted":
                continue
            entry = self.orders.get(sale.order_id)
            if entry is not None and self.listeners.get(sale.order_id):
                wanted.append((sale, entry[2]))
            else:
                unwanted.append(sale)
                self._answer(sale.order_id, "unavailable")
        if unwanted:
            self.holder.rows_failed(unwanted)
        if not wanted:
            return
        status = self.holder.status
        refused, unknown = await self.rows.write(wanted, status["price_fen"], status["sku"], self.flash.cloud.now_ms())
        if refused:
            self.holder.rows_failed(refused)
        if unknown:
            self.holder.rows_unsure(unknown)
        failed = {s.order_id for s in refused} | {s.order_id for s in unknown}
        for sale, key in wanted:
            if sale.order_id in failed:
                self._answer(sale.order_id, "unavailable")
            else:
                answer = self._body(sale.order_id, sale.member, sale.qty)
                self._remember(key, answer)
                self._answer(sale.order_id, "accepted", answer)

    async def _check_unsure(self) -> None:
        """Rows whose write had an unknown outcome: found, they are recorded; missing, unsold (next sync)."""
        now = self.flash.cloud.now_ms()
        if not self.holder.unsure or now - self.last_check_ms < UNSURE_CHECK_MS:
            return
        self.last_check_ms = now
        checked = list(self.holder.unsure)
        try:
            present = await self.rows.present(checked)
        except Exception as exc:  # noqa: BLE001 - still unknown: they stay sold, and are looked up again
            log.warning("flash sale %s: %d order rows still unconfirmed (%s)", self.sale_id, len(checked), exc)
            return
        self.holder.rows_checked(checked, present)

    async def stop(self) -> None:
        """Finish the sync under way, then hand the lease back and settle the rows (best effort: a worker that
        cannot is treated as silent by the gate, which takes its lease back and has its sales adopted)."""
        self.stopping = True
        try:
            async with asyncio.timeout(STOP_WAIT_S):
                await self.task
                self.holder.retire()  # every spare unit goes back
                await self._sync()
        except Exception as exc:  # noqa: BLE001 - shutting down: the gate's expiry covers what is left
            log.warning("flash sale %s: lease not handed back at shutdown (%s)", self.sale_id, exc)
            self.task.cancel()

    def _body(self, order_id: str, member: str, qty: int) -> dict:
        status = self.holder.status
        return {"order_id": order_id, "sale_id": self.sale_id, "status": "accepted", "member_id": member, "qty": qty,
                "price_fen": status["price_fen"], "total_fen": status["price_fen"] * qty, "sku": status["sku"]}

    def _remember(self, key: str, answer) -> None:
        if len(self.answers) >= ANSWER_CACHE_MAX:
            self.answers.clear()
        self.answers[key] = answer


class FlashSales:
    def __init__(self, cloud, worker_id: str) -> None:
        self.cloud, self.worker_id = cloud, worker_id
        self.sales: dict[str, SaleWorker] = {}
        self.bought = BoughtOrders(lambda: cloud.db)
        self.stores = FlashStores(cloud)
        self._opening: dict[str, asyncio.Lock] = {}

    async def create(self, sale_id: str, by: Operator | None = None, stores: list[str] | str | None = None,
                     **config) -> dict:
        """Open a sale; `by`: the operator opening it (the audit log records who, with the sale's settings);
        `stores`: whose online escrow holds the sale's units (`cloud/services/flash_stores.py`; None: a sale-only
        sale, its orders never assigned to a store)."""
        blocks: dict[str, int] = {}
        if stores is not None:
            chosen = self.stores.stores_of(stores)
            blocks = await self.stores.take_escrow(sale_id, config["sku"], config["quantity"], chosen, config["ends_ms"])
        try:
            await self._open(sale_id, by, blocks, config)
        except Exception:
            # Any failure before the sale is recorded (the gate refused it, its call timed out, the database): the
            # blocks go back to the stores' escrow now rather than at sale end + TTL + margin. Safe even if the gate
            # did open: a sale without its `flash_sales` row takes no orders (`worker` asks `_known`), and its id is
            # new per request, so nothing retries it onto the released blocks. Idempotent by the blocks' ids.
            if blocks and not await self._recorded(sale_id):
                await self.stores.release_blocks(sale_id, config["sku"], list(blocks))
            raise
        return await self.status(sale_id)

    async def _open(self, sale_id: str, by: Operator | None, blocks: dict[str, int], config: dict) -> None:
        """The gate configured, then the sale recorded (with who opened it, in the audit log)."""
        result = await self.cloud.actors.flash_sale(sale_id).open(OpenSale(id="open", sale_id=sale_id, **config))
        if result.status == "error":
            raise Refusal("invalid", result.reason)
        if blocks:
            config = {**config, "blocks": blocks}
        # whose actors sell it: an audit wakes only its own deployment's gates (tests and load runs share a
        # database with other actor prefixes)
        config = {**config, "actors": self.cloud.shards.prefix}
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            created = await conn.fetchval("insert into flash_sales (sale_id, config, created_ms) values ($1, $2, $3) "
                                          "on conflict do nothing returning sale_id", sale_id, json.dumps(config), now)
            if created is not None and by is not None:
                await record(conn, now, by, "flash_sale.create", f"flash_sale:{sale_id}", None, config)

    async def _recorded(self, sale_id: str) -> bool:
        """Whether the sale's row is there (True when the database cannot say: then the blocks are left to lapse)."""
        try:
            return bool(await self.cloud.db.fetchval("select 1 from flash_sales where sale_id = $1", sale_id))
        except Exception:  # noqa: BLE001 - unsure: keeping the blocks (they lapse) is safer than freeing a live sale's
            log.exception("flash sale %s: not known whether it was recorded; its blocks are left to lapse", sale_id)
            return True

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
                "members": s["members"], "rejected_over_limit": s["rejected_over_limit"],
                "unrecorded": s.get("unrecorded", 0), "released": s.get("released", 0),
                "returned": s.get("returned", 0), "stores": await self.stores.blocks_of(sale_id)}

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
        """Every sale's lease handed back and its rows settled, as far as the gate and the database answer."""
        await asyncio.gather(*(worker.stop() for worker in self.sales.values()))
