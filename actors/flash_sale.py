"""Flash sales: the FlashSaleGate, one per sale (the LeaseHolder each API worker runs in front of it is in
`actors/flash_lease.py`).

The gate **leases blocks of units** to workers. A worker admits requests locally against its block (no Ray call
per request), commits the admitted sales to the gate in batches, writes their order rows, and says in its next
sync which rows it could not write. Sold-out is known locally.

Gate guarantees (checked by `audit()`):
- `sold + leased <= quantity` at every step: a sale ends exactly at its quantity, never one unit over.
- no member ever holds more than `per_member_limit` units: the limit is checked at commit, globally.
- **a unit stays sold only with its order row:** a sale is *unrecorded* until the worker that sold it syncs again;
  that next sync names the sales whose rows failed (`released`: unsold, their units back in the pool) and those it
  cannot tell yet (`unsure`: still unrecorded); every other sale of its earlier syncs is recorded. A same-key
  retry through another worker makes that worker the sale's owner, so only the worker that last wrote (or failed
  to write) its row decides. The unrecorded sales of a worker silent for `ORPHAN_AFTER_MS` are handed to the next
  worker that syncs (`adopted`), which checks the rows and releases the missing ones.
- leases are taken back when a worker returns them or goes silent for `lease_idle_ms`; a worker whose waiting
  requests need units the pool no longer has is *short*, and every other worker is told to hand its spare units
  back (`hand_back`), so no request is refused as sold out while units remain anywhere.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict

from actors.base import Command, CommandError, IdempotentActor, Query, Result, ok, rejected
from protocol.schema import record, require

LEASE_IDLE_MS = 10_000  # a worker silent this long loses its lease
# ... and this long, its unrecorded sales go to be adopted: far past a row write's timeout, so that no row of a
# worker still writing it can be found missing by another and its sale unsold
ORPHAN_AFTER_MS = 60_000
WORKER_ACTIVE_MS = 5_000
SHORT_MS = 1_000  # a worker short of units asks again every few ms; a shortness older than this is stale
ADOPT_MAX = 200  # unrecorded sales of silent workers handed to one sync to check
MEMBER_FEED_MAX = 5_000  # members' new unit counts sent to a worker in one sync (the rest in the next ones)


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
    """One batched call from a worker: settle the sales of its earlier syncs (rows `released`: not written, unsold
    now; `unsure`: not known yet; all others written), commit its admitted sales, give back `returned` units, ask
    for `want` more; `need`: units its waiting requests need now (short of them, it is told apart). Values:
    results ([order_id, verdict] per sale), `adopted` (order ids of silent workers' unrecorded sales, now this
    worker's to check), `members` ([member, units now, order id, qty sold or -qty unsold] for every sale and unsale
    since the worker's `members_seen`-th, up to `MEMBER_FEED_MAX`; `members_seen` then) and the worker's status
    (lease, unleased, sold, sold_out, hand_back, ...)."""
    OP: ClassVar[str] = "sync"
    worker: str
    sales: tuple[AdmittedSale, ...] = ()
    want: int = 0
    returned: int = 0
    need: int = 0
    released: tuple[str, ...] = ()
    unsure: tuple[str, ...] = ()
    members_seen: int = 0

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.want >= 0, "sync: want must be a non-negative integer")
        require(self.need >= 0, "sync: need must be a non-negative integer")


@record
class ReturnUnits(Command):
    """A recorded order that ended unserved (expired unpaid, or cancelled): its units go back on sale and its member
    may buy them again. Values: returned (units; 0 when the order is not sold, e.g. returned before)."""
    OP: ClassVar[str] = "return_units"
    order_id: str


@record
class SaleStatusQuery(Query):
    """The sale's configuration and counters."""

    def answer(self, actor: Any) -> Any:
        return actor.status()


class FlashSaleGate(IdempotentActor):
    COMMANDS = (OpenSale, LeaseSync, ReturnUnits)

    def __init__(self) -> None:
        super().__init__()
        self.config: SaleConfig | None = None
        self.sold = 0
        self.leases: dict[str, int] = {}
        self.last_seen: dict[str, int] = {}
        self.member_units: dict[str, int] = {}
        self.orders: dict[str, tuple[str, int]] = {}
        self.rejected_over_limit = 0
        self.unrecorded: dict[str, dict[str, int]] = {}  # worker -> {order id: qty}: rows not confirmed yet
        self.orphans: dict[str, int] = {}  # unrecorded sales of workers that went silent, waiting to be adopted
        self.short: dict[str, int] = {}  # worker -> when it last could not get the units its requests need
        self.released_units = 0  # units unsold because their order rows could not be written
        self.returned_units = 0  # units of orders that ended unserved, put back on sale
        self.returned: set[str] = set()  # those orders (their ids never sell again)
        # every change of a member's units, in order: each worker reads on from where it was, and so knows who is at
        # the limit without asking (a member who bought through another worker is refused locally)
        self.member_feed: list[tuple[str, int, str, int]] = []  # (member, units now, order id, qty sold or -unsold)

    @property
    def quantity(self) -> int:
        return self.config["quantity"] if self.config else 0

    @property
    def unleased(self) -> int:
        return self.quantity - self.sold - sum(self.leases.values())

    @property
    def unrecorded_units(self) -> int:
        return sum(sum(d.values()) for d in self.unrecorded.values()) + sum(self.orphans.values())

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

    def rate_share(self, now_ms: int) -> float:
        active = sum(1 for t in self.last_seen.values() if now_ms - t <= WORKER_ACTIVE_MS) or 1
        return self._require_open()["rate_per_s"] / active

    def _status(self, worker: str, now_ms: int) -> dict[str, Any]:
        cfg = self._require_open()
        hand_back = any(w != worker and now_ms - t <= SHORT_MS for w, t in self.short.items())
        return {"lease": self.leases.get(worker, 0), "unleased": self.unleased, "sold": self.sold,
                "quantity": cfg["quantity"], "sold_out": self.sold >= cfg["quantity"], "hand_back": hand_back,
                "rate_per_s": self.rate_share(now_ms), "starts_ms": cfg["starts_ms"], "ends_ms": cfg["ends_ms"],
                "per_member_limit": cfg["per_member_limit"], "price_fen": cfg["price_fen"], "sku": cfg["sku"],
                "returned": self.returned_units}

    def op_sync(self, c: LeaseSync, now_ms: int) -> Result:
        """One batched call from a worker: settle its earlier sales, commit its new ones, return spare units, top
        its lease up, and hand it silent workers' unrecorded sales to check."""
        cfg = self._require_open()
        worker = c.worker
        self.last_seen[worker] = now_ms
        self._settle(worker, c.unsure, c.released)
        results = [self._commit_one(cfg, worker, sale) for sale in c.sales]
        lease = self.leases.get(worker, 0)
        lease = self.leases[worker] = lease - min(max(c.returned, 0), lease)
        if cfg["starts_ms"] <= now_ms < cfg["ends_ms"]:
            lease = self.leases[worker] = lease + min(c.want, self.unleased)
        if c.need > lease and self.sold < cfg["quantity"]:
            self.short[worker] = now_ms
        else:
            self.short.pop(worker, None)
        seen = min(max(c.members_seen, 0), len(self.member_feed))
        feed = self.member_feed[seen:seen + MEMBER_FEED_MAX]
        return ok(results=results, adopted=self._adopt(worker), members=[list(e) for e in feed],
                  members_seen=seen + len(feed), **self._status(worker, now_ms))

    def _settle(self, worker: str, unsure: tuple[str, ...], released: tuple[str, ...]) -> None:
        """The worker's earlier sales: those it names as released are unsold; unsure ones stay unrecorded; every
        other one has its row. Names of sales it no longer owns (retried through another worker) are ignored."""
        earlier = self.unrecorded.pop(worker, None)
        if not earlier:
            return
        still = {o: earlier[o] for o in unsure if o in earlier}
        for order_id in released:
            if earlier.pop(order_id, None) is not None and order_id not in still:  # once, if named twice
                self._unsell(order_id)
        if still:
            self.unrecorded[worker] = still

    def _unsell(self, order_id: str) -> None:
        member, qty = self.orders.pop(order_id)
        self.sold -= qty
        self.released_units += qty
        left = self.member_units.get(member, 0) - qty
        if left > 0:
            self.member_units[member] = left
        else:
            self.member_units.pop(member, None)
        self.member_feed.append((member, max(left, 0), order_id, -qty))

    def op_return_units(self, c: ReturnUnits, now_ms: int) -> Result:
        """Units of an ended order back on sale: `sold` falls, so workers' leases can take them again, and the
        member's count falls in every worker through the member feed (as for a row that failed)."""
        order_id = c.order_id
        if any(order_id in d for d in (*self.unrecorded.values(), self.orphans)):
            return rejected("unrecorded")  # its row is not confirmed yet: asked again (only recorded orders end)
        if order_id not in self.orders:
            return ok(returned=0)  # returned before (or never sold): nothing to do
        qty = self.orders[order_id][1]
        self._unsell(order_id)
        self.returned.add(order_id)
        self.released_units -= qty  # released counts rows never written; these were: counted apart
        self.returned_units += qty
        return ok(returned=qty)

    def _own(self, worker: str, order_id: str, qty: int) -> None:
        """`worker` writes this sale's row now: it becomes the sale's owner if the sale is still unrecorded."""
        if self.orphans.pop(order_id, None) is not None:
            self.unrecorded.setdefault(worker, {})[order_id] = qty
            return
        for other, sales in self.unrecorded.items():
            if other != worker and order_id in sales:
                del sales[order_id]
                self.unrecorded.setdefault(worker, {})[order_id] = qty
                return

    def _commit_one(self, cfg: SaleConfig, worker: str, sale: AdmittedSale) -> list[str]:
        order_id, member, qty = sale.order_id, sale.member, sale.qty
        if qty <= 0:
            return [order_id, "invalid"]
        if order_id in self.returned:  # a same-key retry of an order that ended unserved: that key is spent
            return [order_id, "conflict"]
        if order_id in self.orders:
            if self.orders[order_id] != (member, qty):
                return [order_id, "conflict"]
            self._own(worker, order_id, qty)
            return [order_id, "accepted"]
        if self.member_units.get(member, 0) + qty > cfg["per_member_limit"]:
            self.rejected_over_limit += 1
            return [order_id, "over_limit"]
        lease = self.leases.get(worker, 0)
        from_lease = min(lease, qty)
        if qty - from_lease > self.unleased:
            # only a worker whose lease was taken back gets here: sold out only if no unit is left anywhere
            return [order_id, "sold_out" if self.sold + qty > cfg["quantity"] else "throttled"]
        self.leases[worker] = lease - from_lease
        self.sold += qty
        self.member_units[member] = self.member_units.get(member, 0) + qty
        self.member_feed.append((member, self.member_units[member], order_id, qty))
        self.orders[order_id] = (member, qty)
        self.unrecorded.setdefault(worker, {})[order_id] = qty
        return [order_id, "accepted"]

    def _adopt(self, worker: str) -> list[str]:
        if not self.orphans:
            return []
        adopted = list(self.orphans)[:ADOPT_MAX]
        mine = self.unrecorded.setdefault(worker, {})
        for order_id in adopted:
            mine[order_id] = self.orphans.pop(order_id)
        return adopted

    def op_expire(self, c: Command, now_ms: int) -> Result:
        """Take back the leases of workers that went silent, and put their unrecorded sales up for adoption."""
        taken = orphaned = 0
        for worker, seen in list(self.last_seen.items()):
            if now_ms - seen <= LEASE_IDLE_MS:
                continue
            if self.leases.get(worker):
                taken += self.leases.pop(worker)
            if self.unrecorded.get(worker) and now_ms - seen > ORPHAN_AFTER_MS:
                sales = self.unrecorded.pop(worker)
                self.orphans.update(sales)
                orphaned += len(sales)
            self.short.pop(worker, None)
        forgotten = self.forget_old_ids(now_ms)
        return Result(status="ok", values={"taken_back": taken, "orphaned": orphaned},
                      noop=not (taken or orphaned or forgotten))

    def status(self) -> dict[str, Any]:
        cfg: Mapping[str, Any] = self.config or {}
        return {**cfg, "sold": self.sold, "remaining": self.quantity - self.sold, "leased": sum(self.leases.values()),
                "members": len(self.member_units), "rejected_over_limit": self.rejected_over_limit,
                "unrecorded": self.unrecorded_units, "released": self.released_units,
                "returned": self.returned_units}

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
        unrecorded = [o for sales in (*self.unrecorded.values(), self.orphans) for o in sales]
        if any(o not in self.orders for o in unrecorded) or len(unrecorded) != len(set(unrecorded)):
            problems.append("an unrecorded sale that is not sold, or has two owners")
        return problems

    def state_snapshot(self) -> dict[str, Any]:
        return {"config": self.config, "sold": self.sold, "leases": self.leases, "last_seen": self.last_seen,
                "member_units": self.member_units, "orders": {k: list(v) for k, v in self.orders.items()},
                "rejected_over_limit": self.rejected_over_limit, "unrecorded": self.unrecorded,
                "orphans": self.orphans, "short": self.short, "released_units": self.released_units,
                "returned_units": self.returned_units,
                "returned": sorted(self.returned),
                "member_feed": [list(e) for e in self.member_feed]}

    def restore_state(self, s: dict[str, Any]) -> None:
        self.config, self.sold, self.leases, self.last_seen = s["config"], s["sold"], s["leases"], s["last_seen"]
        self.member_units, self.rejected_over_limit = s["member_units"], s["rejected_over_limit"]
        self.orders = {k: tuple(v) for k, v in s["orders"].items()}
        # snapshots taken before rows were tracked have none of these: every sale of theirs counts as recorded
        self.unrecorded, self.orphans = s.get("unrecorded", {}), s.get("orphans", {})
        self.short, self.released_units = s.get("short", {}), s.get("released_units", 0)
        self.returned_units, self.returned = s.get("returned_units", 0), set(s.get("returned", ()))
        self.member_feed = [(m, u, o, q) for m, u, o, q in s.get("member_feed", [])]
