"""A worker's side of one flash sale: the LeaseHolder, in front of the sale's FlashSaleGate (`actors/flash_sale.py`).

Pure: no I/O, no clock reads (time is passed in). The API process's shell (`cloud/services/flash_sales.py`) calls
`admit()` per request, sends `sync_command()` every few milliseconds, and reports back what became of the order
rows of the sales the gate accepted.

Guarantees:
- `admit()` answers at once, without a Ray call: admitted (the gate's verdict comes with the next sync), queued
  (units remain, but other workers hold them: the request waits for units that are handed back, at most
  `QUEUE_WAIT_MS`; not many more requests wait than units are left), or a refusal: sold_out (only when no unit is
  left anywhere, by the gate's last word), throttled, over_limit (this worker admitted the member up to the
  limit, or the gate's feed says the member bought up to it through any worker), not_started or ended.
- A sync whose answer was lost is sent again, unchanged (same id), before any other: the gate's answer to the first
  sending is the one that counts, and no sale of it can be taken as recorded without its row; its accepted sales
  are confirmed once more before their rows are written.
- Units are handed back when this worker has seen no demand for `LEASE_RETURN_IDLE_MS`, or when the gate says
  another worker is short; while others are short this worker asks only for what its own waiting requests need.
- Every sale the gate accepted is reported back in the next sync: rows written (implicitly), `released` (its row
  failed: unsold) or `unsure` (not known yet: it stays sold until the row is found or found missing).
"""
from __future__ import annotations

from typing import Any

from actors.base import Result
from actors.flash_sale import AdmittedSale, LeaseSync

QUEUE_MAX = 10_000  # requests waiting here for units held by other workers; past this they are throttled
QUEUE_FLOOR = 256  # requests that may wait here however few units are left (those beyond: throttled)
QUEUE_WAIT_MS = 3_000  # the longest a request waits for handed-back units; then throttled (429, retry)
LEASE_RETURN_IDLE_MS = 300  # no demand here this long: the unused lease goes back to the gate for others
SOLD_OUT_SYNC_MS = 100  # sold out with buyers still asking: this often, lest a unit unsold since is missed
IDLE_SYNC_MS = 1_000  # an idle worker still syncs this often: fresh sold-out news, and the gate sees it alive


class TokenBucket:
    """Admission rate: `rate` tokens per second, bursts up to one second's worth."""

    def __init__(self, rate: float, now_ms: int) -> None:
        self.rate, self.tokens, self.at_ms = rate, rate, now_ms

    def take(self, now_ms: int) -> bool:
        self.tokens = min(self.rate, self.tokens + (now_ms - self.at_ms) * self.rate / 1000)
        self.at_ms = now_ms
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class LeaseHolder:
    """A worker's side of one flash sale: admit locally, batch the commits, refill before running dry, hand
    spare units back, report what became of the order rows."""

    def __init__(self, worker: str, status: dict[str, Any], now_ms: int, block: int = 50) -> None:
        self.worker, self.block = worker, block
        self.units = 0  # leased units not yet promised to a request
        self.pending: list[AdmittedSale] = []  # admitted sales waiting for the next sync
        self.queued: list[tuple[AdmittedSale, int]] = []  # (sale, since ms): waiting for units held elsewhere
        self.queued_units = 0
        self._in_flight: list[AdmittedSale] = []  # sent in the unanswered sync
        self._unanswered: LeaseSync | None = None  # sent, answer not seen: sent again before anything else
        self.members: dict[str, int] = {}  # units this worker admitted per member (queued, pending or accepted)
        self.released: list[str] = []  # accepted, but the row was not written: unsold in the next sync
        self.unsure: dict[str, AdmittedSale | None] = {}  # accepted, row not known yet (None: adopted from another)
        self.last_demand_ms = now_ms
        self.retired = False
        self.gate_units: dict[str, int] = {}  # members' units by the gate's feed (sold through any worker)
        self.gate_sold: dict[str, int] = {}  # order id -> qty, by the gate's feed: a same-key retry is no new sale
        self.members_seen = 0
        self.bucket = TokenBucket(status["rate_per_s"], now_ms)
        self.apply_status(status)
        for order_id in status.get("adopted", ()):  # the first sync's answer may hand over sales to check too
            self.unsure.setdefault(order_id, None)

    def apply_status(self, status: dict[str, Any]) -> None:
        self.status = status
        if status.get("members_seen", 0) > self.members_seen:  # (an answer sent again may be behind: skipped)
            for member, units, order_id, qty in status.get("members", ()):
                if units:
                    self.gate_units[member] = units
                else:
                    self.gate_units.pop(member, None)
                if qty > 0:
                    self.gate_sold[order_id] = qty
                else:  # unsold (a row that failed, or an order that ended unserved): the member may buy again here
                    self.gate_sold.pop(order_id, None)  # (a worker that counted it already forgot it: floor 0; the
                    self.members[member] = max(self.members.get(member, 0) + qty, 0)  # gate checks the limit anyway)
            self.members_seen = status["members_seen"]
        promised = sum(s.qty for s in self.pending)
        self.units = max(status["lease"] - promised, 0)
        self.bucket.rate = max(status["rate_per_s"], 1.0)

    @property
    def sold_out(self) -> bool:
        return self.status["sold_out"] and self.units == 0 and not self.pending and not self.queued

    def _none_left(self, qty: int) -> bool:
        """No `qty` units are left anywhere (by the gate's last word): neither in the pool nor in any lease."""
        return bool(self.status["sold_out"]) or self.status["quantity"] - self.status["sold"] < qty

    def _forget(self, sale: AdmittedSale) -> None:
        self.members[sale.member] = max(self.members.get(sale.member, 0) - sale.qty, 0)

    def admit(self, order_id: str, member: str, qty: int, now_ms: int) -> str:
        st = self.status
        if now_ms < st["starts_ms"]:
            return "not_started"
        if now_ms >= st["ends_ms"]:
            return "ended"
        if self.members.get(member, 0) + qty > st["per_member_limit"]:
            return "over_limit"
        if self.gate_units.get(member, 0) + qty > st["per_member_limit"] and self.gate_sold.get(order_id) != qty:
            return "over_limit"  # bought up to the limit through any worker (a same-key retry goes on: the gate
            # accepts its duplicate and this worker writes, or finds, its row)
        self.last_demand_ms = now_ms
        if self.units < qty and self._none_left(qty):
            return "sold_out"
        if not self.bucket.take(now_ms):
            return "throttled"
        sale = AdmittedSale(order_id=order_id, member=member, qty=qty)
        if self.units >= qty and not self.queued:  # nobody overtakes a waiting request
            self.units -= qty
            self.members[member] = self.members.get(member, 0) + qty
            self.pending.append(sale)
            return "admitted"
        left = self.status["quantity"] - self.status["sold"]
        if len(self.queued) >= QUEUE_MAX or self.queued_units + qty > max(left, QUEUE_FLOOR):
            # not many more waiting here than units left anywhere: the rest would wait in vain, holding connections
            return "throttled"
        self.members[member] = self.members.get(member, 0) + qty
        self.queued.append((sale, now_ms))
        self.queued_units += qty
        return "queued"

    def drain_queue(self, now_ms: int) -> dict[str, str]:
        """Waiting requests that can be decided now: admitted (units came), sold_out, ended or throttled (waited
        `QUEUE_WAIT_MS`). Undecided ones keep waiting, in order."""
        if not self.queued:
            return {}
        verdicts: dict[str, str] = {}
        waiting: list[tuple[AdmittedSale, int]] = []
        for sale, since in self.queued:
            if now_ms >= self.status["ends_ms"]:
                verdicts[sale.order_id] = "ended"
            elif self.units >= sale.qty and not waiting:
                self.units -= sale.qty
                self.pending.append(sale)
                verdicts[sale.order_id] = "admitted"
                continue
            elif self.units < sale.qty and self._none_left(sale.qty):
                verdicts[sale.order_id] = "sold_out"
            elif now_ms - since >= QUEUE_WAIT_MS:
                verdicts[sale.order_id] = "throttled"
            else:
                waiting.append((sale, since))
                continue
            self._forget(sale)
        self.queued = waiting
        self.queued_units = sum(sale.qty for sale, _ in waiting)
        return verdicts

    @property
    def in_flight(self) -> list[AdmittedSale]:
        """The sales of the unanswered sync."""
        return self._in_flight

    def retire(self) -> None:
        """This worker stops selling: its next sync hands every spare unit back and asks for none."""
        self.retired = True

    def _idle(self, now_ms: int) -> bool:
        return self.retired or now_ms - self.last_demand_ms >= LEASE_RETURN_IDLE_MS

    def needs_sync(self, now_ms: int, last_sync_ms: int) -> bool:
        """Whether the shell should sync now (it asks every few milliseconds)."""
        if self._unanswered is not None or self.pending or self.queued or self.released:
            return True
        if self.units and (self._idle(now_ms) or self.status.get("hand_back")):
            return True  # hand the spare units back
        if not self._idle(now_ms) and self.units < self.block // 2 and not self.status["sold_out"]:
            return True  # refill before running dry
        if not self._idle(now_ms) and self.status["sold_out"]:
            return now_ms - last_sync_ms >= SOLD_OUT_SYNC_MS  # buyers hear "sold out": is it still true?
        return now_ms - last_sync_ms >= IDLE_SYNC_MS

    def sync_command(self, command_id: str, now_ms: int) -> LeaseSync:
        """The next batched call to the gate (the unanswered one again, if any); `take_results` must see its answer."""
        if self._unanswered is not None:
            return self._unanswered
        need = self.queued_units
        idle, others_short = self._idle(now_ms), bool(self.status.get("hand_back"))
        returned = 0
        if self.units and not need and (idle or others_short):
            returned, self.units = self.units, 0
        if self.status["sold_out"]:
            want = 0
        elif others_short or idle:  # take only what the requests here need: the rest is someone else's
            want = need
        else:
            want = max(need, self.block if self.units < self.block // 2 else 0)
        sales, self.pending = self.pending, []
        released, self.released = tuple(self.released), []
        self._in_flight = sales
        self._unanswered = LeaseSync(id=command_id, worker=self.worker, sales=tuple(sales), want=want,
                                     returned=returned, need=need, released=released, unsure=tuple(self.unsure),
                                     members_seen=self.members_seen)
        return self._unanswered

    def take_results(self, result: Result) -> dict[str, str]:
        """The gate's answer to the unanswered sync: verdicts by order id; the lease and status are refreshed, and
        sales the gate handed over to check (`adopted`) are unsure here until their rows are checked. An answer
        that is the gate's first answer sent again (`exists`: the first was lost, maybe long ago) is stale: its
        accepted sales get the verdict "again" and go in the next sync once more, to be confirmed before any row."""
        self._unanswered = None
        again = result.status == "exists"  # the first answer was lost: it may be stale by now
        result = result.settled
        verdicts = {order_id: verdict for order_id, verdict in result.get("results", [])}
        for sale in self._in_flight:
            if verdicts.get(sale.order_id) != "accepted":
                self.unsure.pop(sale.order_id, None)
                self._forget(sale)
            elif again:  # confirmed again before its row is written: meanwhile it may have been unsold
                verdicts[sale.order_id] = "again"
                self.pending.append(sale)
                self.unsure[sale.order_id] = sale  # not recorded by the next sync: its row is not written yet
            else:
                self.unsure.pop(sale.order_id, None)  # confirmed: its row is written (or not) after this answer
        self._in_flight = []
        if result.status == "ok":
            self.apply_status(result.values)
            for order_id in result.values.get("adopted", ()):
                self.unsure.setdefault(order_id, None)
        return verdicts

    # -- what became of the order rows of accepted sales (reported to the gate in the next sync)
    def rows_failed(self, sales: list[AdmittedSale]) -> None:
        """These rows were not written (and never will be, as sent): the sales are unsold in the next sync."""
        for sale in sales:
            self.unsure.pop(sale.order_id, None)
            self.released.append(sale.order_id)
            self._forget(sale)

    def rows_unsure(self, sales: list[AdmittedSale]) -> None:
        """Whether these rows were written is not known (the database did not answer): they stay sold until checked."""
        for sale in sales:
            self.unsure[sale.order_id] = sale

    def rows_checked(self, checked: list[str], present: set[str]) -> None:
        """Unsure rows looked up: those present are recorded, the missing ones unsold in the next sync."""
        for order_id in checked:
            if order_id not in self.unsure:
                continue
            sale = self.unsure.pop(order_id)
            if order_id in present or order_id in self.released:
                continue
            self.released.append(order_id)
            if isinstance(sale, AdmittedSale):
                self._forget(sale)
