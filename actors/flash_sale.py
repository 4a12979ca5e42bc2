"""Flash sales: a FlashSaleGate per sale, and the LeaseHolder each API worker runs in front of it.

The gate **leases blocks of units** to workers. A worker admits requests locally against its block (no Ray call
per request), queues the admitted sales and commits them to the gate in batches, asking for the next block
before it runs dry. Sold-out is known locally.

Gate guarantees (checked by `audit()`):
- `sold + leased <= quantity` at every step: a sale ends exactly at its quantity, never one unit over.
- no member ever holds more than `per_member_limit` units: the limit is checked at commit, globally.
- leases are taken back when a worker returns them or goes silent for `lease_idle_ms`; a commit against a lease
  that was taken back only succeeds if unleased units remain.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict

from actors.base import Command, CommandError, IdempotentActor, Query, Result, ok, rejected
from protocol.schema import record, require

LEASE_IDLE_MS = 10_000
WORKER_ACTIVE_MS = 5_000




@record
class OpenSale(Command):
    """Configure the gate once. Values: config; rejected if configured already."""
    OP: ClassVar[str] = "open"
    sale_id: str
    sku: str
    quantity: int
    price_fen: int
    starts_ms: int
    ends_ms: int
    per_member_limit: int
    rate_per_s: int

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        for name in ("quantity", "price_fen", "per_member_limit", "rate_per_s"):
            require(getattr(self, name) > 0, f"open: {name} must be positive")
        require(self.ends_ms > self.starts_ms, "open: ends_ms must be after starts_ms")


class SaleConfig(TypedDict):
    """What `open` configured: the gate's copy of the OpenSale command, without its id."""
    sale_id: str
    sku: str
    quantity: int
    price_fen: int
    starts_ms: int
    ends_ms: int
    per_member_limit: int
    rate_per_s: int


@record
class AdmittedSale:
    """A sale a worker admitted locally, committed to the gate in its next sync."""
    order_id: str
    member: str
    qty: int


@record
class LeaseSync(Command):
    """One batched call from a worker: commit its admitted sales, give back `returned` units, ask for `want`
    more. Values: results ([order_id, verdict] per sale) and the worker's status (lease, unleased, sold, ...)."""
    OP: ClassVar[str] = "sync"
    worker: str
    sales: tuple[AdmittedSale, ...] = ()
    want: int = 0
    returned: int = 0

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.want >= 0, "sync: want must be a non-negative integer")


@record
class SaleStatusQuery(Query):
    """The sale's configuration and counters."""

    def answer(self, actor: Any) -> Any:
        return actor.status()


class FlashSaleGate(IdempotentActor):
    COMMANDS = (OpenSale, LeaseSync)

    def __init__(self) -> None:
        super().__init__()
        self.config: SaleConfig | None = None
        self.sold = 0
        self.leases: dict[str, int] = {}
        self.last_seen: dict[str, int] = {}
        self.member_units: dict[str, int] = {}
        self.orders: dict[str, tuple[str, int]] = {}
        self.rejected_over_limit = 0

    @property
    def quantity(self) -> int:
        return self.config["quantity"] if self.config else 0

    @property
    def unleased(self) -> int:
        return self.quantity - self.sold - sum(self.leases.values())

    def _require_open(self) -> SaleConfig:
        if self.config is None:
            raise CommandError("the sale is not configured")
        return self.config

    def op_open(self, c: OpenSale, now_ms: int) -> Result:
        if self.config is not None:
            return rejected("the sale is configured already", config=self.config)
        cfg: SaleConfig = {"sale_id": c.sale_id, "sku": c.sku, "quantity": c.quantity, "price_fen": c.price_fen,
                           "starts_ms": c.starts_ms, "ends_ms": c.ends_ms, "per_member_limit": c.per_member_limit,
                           "rate_per_s": c.rate_per_s}
        self.config = cfg
        return ok(config=cfg)

    def _touch(self, worker: str, now_ms: int) -> None:
        self.last_seen[worker] = now_ms

    def rate_share(self, now_ms: int) -> float:
        active = sum(1 for t in self.last_seen.values() if now_ms - t <= WORKER_ACTIVE_MS) or 1
        return self._require_open()["rate_per_s"] / active

    def _status(self, worker: str, now_ms: int) -> dict[str, Any]:
        cfg = self._require_open()
        return {"lease": self.leases.get(worker, 0), "unleased": self.unleased, "sold": self.sold,
                "sold_out": self.sold >= cfg["quantity"], "rate_per_s": self.rate_share(now_ms),
                "starts_ms": cfg["starts_ms"], "ends_ms": cfg["ends_ms"], "per_member_limit": cfg["per_member_limit"],
                "price_fen": cfg["price_fen"], "sku": cfg["sku"]}

    def op_sync(self, c: LeaseSync, now_ms: int) -> Result:
        """One batched call from a worker: commit its admitted sales, return spare units, top its lease up."""
        cfg = self._require_open()
        worker, want = c.worker, c.want
        self._touch(worker, now_ms)
        results = [self._commit_one(cfg, worker, sale) for sale in c.sales]
        give_back = min(max(c.returned, 0), self.leases.get(worker, 0))
        self.leases[worker] = self.leases.get(worker, 0) - give_back
        if cfg["starts_ms"] <= now_ms < cfg["ends_ms"]:
            grant = min(want, self.unleased)
            self.leases[worker] = self.leases.get(worker, 0) + grant
        return ok(results=results, **self._status(worker, now_ms))

    def _commit_one(self, cfg: SaleConfig, worker: str, sale: AdmittedSale) -> list[str]:
        order_id, member, qty = sale.order_id, sale.member, sale.qty
        if qty <= 0:
            return [order_id, "invalid"]
        if order_id in self.orders:
            return [order_id, "accepted" if self.orders[order_id] == (member, qty) else "conflict"]
        if self.member_units.get(member, 0) + qty > cfg["per_member_limit"]:
            self.rejected_over_limit += 1
            return [order_id, "over_limit"]
        lease = self.leases.get(worker, 0)
        from_lease = min(lease, qty)
        if qty - from_lease > self.unleased:
            return [order_id, "sold_out"]
        self.leases[worker] = lease - from_lease
        self.sold += qty
        self.member_units[member] = self.member_units.get(member, 0) + qty
        self.orders[order_id] = (member, qty)
        return [order_id, "accepted"]

    def op_expire(self, c: Command, now_ms: int) -> Result:
        """Take back the leases of workers that went silent."""
        taken = 0
        for worker, seen in list(self.last_seen.items()):
            if now_ms - seen > LEASE_IDLE_MS and self.leases.get(worker):
                taken += self.leases.pop(worker)
        forgotten = self.forget_old_ids(now_ms)
        return Result(status="ok", values={"taken_back": taken}, noop=not (taken or forgotten))

    def status(self) -> dict[str, Any]:
        cfg: Mapping[str, Any] = self.config or {}
        return {**cfg, "sold": self.sold, "remaining": self.quantity - self.sold, "leased": sum(self.leases.values()),
                "members": len(self.member_units), "rejected_over_limit": self.rejected_over_limit}

    def audit(self) -> list[str]:
        problems = []
        if self.sold + sum(self.leases.values()) > self.quantity:
            problems.append(f"sold {self.sold} + leased {sum(self.leases.values())} exceeds quantity {self.quantity}")
        if any(v < 0 for v in self.leases.values()):
            problems.append("a negative lease")
        limit = self.config["per_member_limit"] if self.config else 0
        over = [m for m, u in self.member_units.items() if u > limit]
        if over:
            problems.append(f"members over the limit: {over[:5]}")
        if sum(q for _, q in self.orders.values()) != self.sold:
            problems.append("orders do not add up to sold")
        return problems

    def state_snapshot(self) -> dict[str, Any]:
        return {"config": self.config, "sold": self.sold, "leases": self.leases, "last_seen": self.last_seen,
                "member_units": self.member_units, "orders": {k: list(v) for k, v in self.orders.items()},
                "rejected_over_limit": self.rejected_over_limit}

    def restore_state(self, s: dict[str, Any]) -> None:
        self.config, self.sold, self.leases, self.last_seen = s["config"], s["sold"], s["leases"], s["last_seen"]
        self.member_units, self.rejected_over_limit = s["member_units"], s["rejected_over_limit"]
        self.orders = {k: tuple(v) for k, v in s["orders"].items()}


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
    """A worker's side of one flash sale: admit locally, batch the commits, refill before running dry.

    `admit()` answers at once: admitted (the caller then awaits the gate's verdict on the next sync), sold_out,
    throttled, over_limit (this worker already admitted the member up to the limit), not_started or ended.
    """

    def __init__(self, worker: str, status: dict[str, Any], now_ms: int, block: int = 50) -> None:
        self.worker, self.block = worker, block
        self.units = 0  # leased units not yet promised to a request
        self.pending: list[AdmittedSale] = []  # admitted sales waiting for the next sync
        self._in_flight: list[AdmittedSale] = []  # sent in a sync whose answer has not come back yet
        self.members: dict[str, int] = {}  # units this worker admitted per member (pending or accepted)
        self.bucket = TokenBucket(status["rate_per_s"], now_ms)
        self.apply_status(status)

    def apply_status(self, status: dict[str, Any]) -> None:
        self.status = status
        promised = sum(s.qty for s in self.pending)
        self.units = max(status["lease"] - promised, 0)
        self.bucket.rate = max(status["rate_per_s"], 1.0)

    @property
    def sold_out(self) -> bool:
        return self.units == 0 and self.status["unleased"] == 0 and not self.pending and self.status["lease"] == 0

    def admit(self, order_id: str, member: str, qty: int, now_ms: int) -> str:
        st = self.status
        if now_ms < st["starts_ms"]:
            return "not_started"
        if now_ms >= st["ends_ms"]:
            return "ended"
        if self.members.get(member, 0) + qty > st["per_member_limit"]:
            return "over_limit"
        if self.units < qty:
            return "sold_out" if self.status["unleased"] == 0 else "throttled"
        if not self.bucket.take(now_ms):
            return "throttled"
        self.units -= qty
        self.members[member] = self.members.get(member, 0) + qty
        self.pending.append(AdmittedSale(order_id=order_id, member=member, qty=qty))
        return "admitted"

    def sync_command(self, command_id: str) -> LeaseSync:
        """The next batched call to the gate; `take_results` must see its answer."""
        want = self.block if self.units < self.block // 2 else 0
        sales, self.pending = self.pending, []
        self._in_flight = sales
        return LeaseSync(id=command_id, worker=self.worker, sales=tuple(sales), want=want)

    def abandon_in_flight(self) -> list[str]:
        """The sync failed (the gate may or may not have the sales): forget them here; a retry of the same
        request (same order id) gets the gate's verdict then. Returns their order ids."""
        sales, self._in_flight = self._in_flight, []
        for sale in sales:
            self.members[sale.member] = max(self.members.get(sale.member, 0) - sale.qty, 0)
        return [sale.order_id for sale in sales]

    def take_results(self, result: Result) -> dict[str, str]:
        result = result.settled
        verdicts = {order_id: verdict for order_id, verdict in result.get("results", [])}
        for sale in self._in_flight:
            if verdicts.get(sale.order_id) != "accepted":
                self.members[sale.member] = max(self.members.get(sale.member, 0) - sale.qty, 0)
        self._in_flight = []
        if result.status == "ok":
            self.apply_status(result.values)
        return verdicts
