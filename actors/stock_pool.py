"""StockPool: the cloud's share of each store's stock, by SKU shard.

Guarantees (checked by `audit()` and by the tests):
- Online orders are reserved **only against escrow** the store granted: for every (store, SKU)
  `pending + confirmed <= escrow`, and nothing is ever negative. Online cannot oversell, even while the store
  is offline.
- A reservation lives `ttl_ms` (default 15 min) unless confirmed (paid); `expire` returns unpaid units to escrow.
- A reclaim from the edge (the till sold past its offline share) returns only unreserved units.
- When a store reports physical stock below its confirmed online orders, a **shortage** is raised naming the
  reservations that cannot be served (newest first), never silently; `reroute` moves a reservation to another
  store's escrow.
- Every change is a journaled **movement** in the result: (store, sku, kind, escrow/pending/confirmed deltas, ref).
- **Channels:** the store grants one online escrow per (store, SKU); the mall (`MALL`) sells from it, and each other
  online channel (a marketplace, `mkt:<id>`) gets its own share of it by its ratio (`SetChannelRatio`). An order
  reserves only from its channel's share (`Reserve.channel`), so no channel oversells another: per channel too,
  `pending + confirmed <= escrow`. Shares follow their ratios of the escrow as it grows and shrinks, by moving
  free units only (never a reserved one); a reclaim takes free units from any channel.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

from actors import stock_blocks
from actors.base import Command, CommandError, IdempotentActor, Query, Result, ok, rejected
from protocol.policy import DEFAULT_ONLINE_RATIO_BP, RESERVATION_TTL_MS
from protocol.schema import record, require


def cancel_id(tag: str, rid: str) -> str:
    """A release's command id: `cancel:{tag}:{rid}`, or its digest when that passes the actors' 64 characters (a
    key-derived tag with a long sku: the release was refused as invalid and the units stayed reserved)."""
    plain = f"cancel:{tag}:{rid}"
    return plain if len(plain) <= 64 else "cancel:" + hashlib.blake2b(plain.encode(), digest_size=20).hexdigest()

DEFAULT_RESERVATION_TTL_MS = RESERVATION_TTL_MS
MALL = "online"  # the mall's channel: the online escrow less every other channel's share
CHANNEL = re.compile(r"^(online|mkt:[a-z0-9_-]{1,24})$")  # the mall, or a marketplace by its id


def valid_channel(channel: str) -> bool:
    return bool(CHANNEL.match(channel))
Movement = list[str | int]  # [store, sku, kind, escrow delta, pending delta, confirmed delta, ref]


@dataclass(slots=True)
class Share:
    """A channel's part of a position (a marketplace's): its escrow, its reservations' units, its ratio of the
    position's escrow."""
    escrow: int = 0
    pending: int = 0
    confirmed: int = 0
    ratio_bp: int = 0

    @property
    def available(self) -> int:
        return self.escrow - self.pending - self.confirmed


@dataclass(slots=True)
class Position:
    """Totals over every channel; `shares` holds each channel's part but the mall's (the rest)."""
    escrow: int = 0  # units the store granted the cloud to sell online, not yet handed over
    pending: int = 0  # reserved, unpaid
    confirmed: int = 0  # paid, waiting for pickup or delivery
    on_hand: int = -1  # last physical stock the store reported (-1: never)
    ratio_bp: int = DEFAULT_ONLINE_RATIO_BP
    shares: dict[str, Share] = field(default_factory=dict)  # channel (not the mall) -> its part

    @property
    def available(self) -> int:
        """Free units of the mall (of the whole position when it has no other channel)."""
        return self.part(MALL).available

    @property
    def available_total(self) -> int:
        return self.escrow - self.pending - self.confirmed

    def part(self, channel: str) -> Share:
        """A channel's part: a share, or the mall's (the totals less every share; its ratio is what is left)."""
        if channel != MALL:
            return self.shares.get(channel) or Share()
        if not self.shares:
            return Share(self.escrow, self.pending, self.confirmed, 10_000)
        shares = self.shares.values()
        return Share(self.escrow - sum(s.escrow for s in shares), self.pending - sum(s.pending for s in shares),
                     self.confirmed - sum(s.confirmed for s in shares), 10_000 - sum(s.ratio_bp for s in shares))

    def count(self, channel: str, pending: int = 0, confirmed: int = 0, escrow: int = 0) -> None:
        """Change a channel's counters, and the totals with them."""
        self.pending, self.confirmed, self.escrow = self.pending + pending, self.confirmed + confirmed, self.escrow + escrow
        if channel != MALL:
            share = self.shares.setdefault(channel, Share())
            share.pending, share.confirmed, share.escrow = (share.pending + pending, share.confirmed + confirmed,
                                                            share.escrow + escrow)

    def rebalance(self) -> dict[str, int]:
        """Move free units between the mall and the shares so that each share holds its ratio of the escrow as
        nearly as free units allow: shares above their target give back first, then those below take from the mall.
        Returns each share's change. A share with no ratio and nothing reserved is dropped."""
        moved: dict[str, int] = {}
        for channel, share in sorted(self.shares.items()):
            over = share.escrow - self.escrow * share.ratio_bp // 10_000
            if over > 0 and (give := min(over, share.available)) > 0:
                share.escrow -= give
                moved[channel] = -give
        for channel, share in sorted(self.shares.items()):
            under = self.escrow * share.ratio_bp // 10_000 - share.escrow
            if under > 0 and (take := min(under, self.part(MALL).available)) > 0:
                share.escrow += take
                moved[channel] = moved.get(channel, 0) + take
        for channel, share in list(self.shares.items()):
            if share.ratio_bp == 0 and share.escrow == share.pending == share.confirmed == 0:
                del self.shares[channel]
        return {c: n for c, n in moved.items() if n}


class Shortage(TypedDict):
    """A confirmed reservation the store's reported stock cannot cover."""
    reservation_id: str
    order_id: str
    store: str
    sku: str
    qty: int
    raised_ms: int


@dataclass(slots=True)
class Reservation:
    order_id: str
    store: str
    sku: str
    qty: int
    state: str  # pending | confirmed | fulfilled | cancelled | expired
    expires_ms: int
    channel: str = MALL  # whose share it holds units of (last: snapshots from before channels load as the mall's)


# ---- commands: every one names the sku, which is also the shard key (the client routes by it) -----------------
@record
class Grant(Command):
    """The store grants the cloud `qty` more units to sell online: shared out to the channels by their ratios, or,
    with `channel`, that channel's (a loan for one of its orders). Values: escrow, available, movements[,
    shares_moved]."""
    OP: ClassVar[str] = "grant"
    QUIET: ClassVar[dict[str, Any]] = {"channel": None}
    store: str
    sku: str
    qty: int
    channel: str | None = None  # None: every channel by its ratio

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.qty > 0, "grant: qty must be positive")
        require(self.channel is None or valid_channel(self.channel), "grant: channel must be online or mkt:<id>")


@record
class Reclaim(Command):
    """The store asks for up to `qty` units back (its till sold past its share). Values: returned, escrow."""
    OP: ClassVar[str] = "reclaim"
    store: str
    sku: str
    qty: int

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.qty > 0, "reclaim: qty must be positive")


@record
class SetRatio(Command):
    """The share of on-hand offered online, in basis points."""
    OP: ClassVar[str] = "set_ratio"
    store: str
    sku: str
    ratio_bp: int

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(0 <= self.ratio_bp <= 10_000, "set_ratio: ratio_bp must be 0..10000")


@record
class SetChannelRatio(Command):
    """A channel's (not the mall's) share of the store's online escrow of a SKU, in basis points; 0 ends the share
    (its free units go to the mall at once, its reserved ones as their orders end). Values: ratio_bp, escrow (the
    share's now), moved. Rejected when the store's channels would together pass 10000."""
    OP: ClassVar[str] = "set_channel_ratio"
    store: str
    sku: str
    channel: str
    ratio_bp: int

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(valid_channel(self.channel) and self.channel != MALL,
                "set_channel_ratio: channel must be mkt:<id> (lower-case letters, digits, _ or -, up to 24)")
        require(0 <= self.ratio_bp <= 10_000, "set_channel_ratio: ratio_bp must be 0..10000")


@record
class ReportOnHand(Command):
    """The store's physical stock. Values: on_hand, confirmed, shortages (raised by this report)."""
    OP: ClassVar[str] = "report_on_hand"
    store: str
    sku: str
    on_hand: int


@record
class Reserve(Command):
    """Hold `qty` for an order until paid or `ttl_ms` passes. Values: expires_ms, available; rejected
    `insufficient` with available and presale."""
    OP: ClassVar[str] = "reserve"
    QUIET: ClassVar[dict[str, Any]] = {"channel": MALL}
    reservation_id: str
    order_id: str
    store: str
    sku: str
    qty: int
    ttl_ms: int = DEFAULT_RESERVATION_TTL_MS
    channel: str = MALL  # the share it reserves from

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.qty > 0, "reserve: qty must be positive")
        require(self.ttl_ms > 0, "reserve: ttl_ms must be a positive integer")
        require(valid_channel(self.channel), "reserve: channel must be online or mkt:<id>")


@record
class Confirm(Command):
    """The order was paid: the reservation no longer expires. Values: state."""
    OP: ClassVar[str] = "confirm"
    reservation_id: str
    sku: str


@record
class Cancel(Command):
    """The order was cancelled: its units return to escrow. Values: state."""
    OP: ClassVar[str] = "cancel"
    reservation_id: str
    sku: str


@record
class Fulfil(Command):
    """The store handed the goods over (`qty` of them when picked in part: the rest stays reserved, for another
    store or to be cancelled; 0: all). Values: state."""
    OP: ClassVar[str] = "fulfil"
    reservation_id: str
    sku: str
    qty: int = 0

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.qty >= 0, "fulfil: qty must not be negative")


@record
class Reroute(Command):
    """Move a live reservation to another store's escrow. Values: store, state."""
    OP: ClassVar[str] = "reroute"
    reservation_id: str
    sku: str
    to_store: str


# ---- queries ---------------------------------------------------------------------------------------------------
@record
class PositionsQuery(Query):
    """Positions: all, one store's, or one (store, sku)."""
    store: str | None = None
    sku: str | None = None

    def answer(self, actor: Any) -> Any:
        return actor.view(self.store, self.sku)


@record
class AvailabilityQuery(Query):
    """Units free to reserve per (store, sku) in one channel's share (the mall's by default), keyed "store/sku"."""
    pairs: tuple[tuple[str, str], ...]
    channel: str = MALL

    def answer(self, actor: Any) -> Any:
        return actor.availability(list(self.pairs), self.channel)


@record
class ShortagesQuery(Query):
    """Open shortages: orders a store cannot hand over."""

    def answer(self, actor: Any) -> Any:
        return list(actor.shortages.values())


class StockPool(IdempotentActor):
    COMMANDS = (Grant, Reclaim, SetRatio, SetChannelRatio, ReportOnHand, Reserve, Confirm, Cancel, Fulfil, Reroute,
                stock_blocks.Carve, stock_blocks.Uncarve)

    def __init__(self) -> None:
        super().__init__()
        self.positions: dict[tuple[str, str], Position] = {}
        self.reservations: dict[str, Reservation] = {}
        self.shortages: dict[str, Shortage] = {}  # reservation id -> shortage record, until resolved

    # ---- helpers -----------------------------------------------------------------------------------
    def position(self, store: str, sku: str) -> Position:
        key = (store, sku)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = Position()
        return pos

    @staticmethod
    def _move(store: str, sku: str, kind: str, ref: str, escrow: int = 0, pending: int = 0, confirmed: int = 0) -> Movement:
        return [store, sku, kind, escrow, pending, confirmed, ref]

    def _reservation(self, c: Confirm | Cancel | Fulfil | Reroute) -> tuple[str, Reservation]:
        res = self.reservations.get(c.reservation_id)
        if res is None:
            raise CommandError(f"{c.OP}: unknown reservation {c.reservation_id}")
        if res.sku != c.sku:
            raise CommandError(f"{c.OP}: reservation {c.reservation_id} is for {res.sku}, not {c.sku}")
        return c.reservation_id, res

    # ---- escrow from and to the edge ------------------------------------------------------------------
    def op_grant(self, c: Grant, now_ms: int) -> Result:
        store, sku, qty = c.store, c.sku, c.qty
        pos = self.position(store, sku)
        if c.channel is not None:  # a loan: the units are the channel's (its order is waiting for them), not shared out now
            pos.count(c.channel, escrow=qty)
            return ok(escrow=pos.escrow, available=pos.available,
                      movements=[self._move(store, sku, "grant", c.id, escrow=qty)])
        pos.escrow += qty
        moved = pos.rebalance()
        return ok(escrow=pos.escrow, available=pos.available, movements=[self._move(store, sku, "grant", c.id, escrow=qty)],
                  **({"shares_moved": moved} if moved else {}))

    def op_reclaim(self, c: Reclaim, now_ms: int) -> Result:
        store, sku, qty = c.store, c.sku, c.qty
        pos = self.position(store, sku)
        returned = min(qty, max(pos.available_total, 0))
        left = returned - min(returned, max(pos.available, 0))  # free units of the mall first, then of the shares
        for share in sorted(pos.shares.values(), key=lambda sh: -sh.available):
            take = min(left, max(share.available, 0))
            share.escrow -= take
            left -= take
        pos.escrow -= returned
        moved = pos.rebalance()
        moves = [self._move(store, sku, "reclaim", c.id, escrow=-returned)] if returned else []
        return ok(returned=returned, escrow=pos.escrow, available=pos.available, movements=moves,
                  **({"shares_moved": moved} if moved else {}))

    def op_set_ratio(self, c: SetRatio, now_ms: int) -> Result:
        self.position(c.store, c.sku).ratio_bp = c.ratio_bp
        return ok(ratio_bp=c.ratio_bp, movements=[])

    def op_set_channel_ratio(self, c: SetChannelRatio, now_ms: int) -> Result:
        pos = self.position(c.store, c.sku)
        others = sum(sh.ratio_bp for ch, sh in pos.shares.items() if ch != c.channel)
        if others + c.ratio_bp > 10_000:
            return rejected(f"the store's other channels hold {others / 100:g}% of its online escrow of {c.sku}: "
                            f"{c.channel} can have at most {(10_000 - others) / 100:g}%", others_bp=others)
        pos.shares.setdefault(c.channel, Share()).ratio_bp = c.ratio_bp
        moved = pos.rebalance()
        return ok(ratio_bp=c.ratio_bp, escrow=pos.part(c.channel).escrow, moved=moved, movements=[])

    def op_report_on_hand(self, c: ReportOnHand, now_ms: int) -> Result:
        """The store's physical stock; if it cannot cover confirmed orders, raise shortages (newest first)."""
        store, sku, on_hand = c.store, c.sku, c.on_hand
        pos = self.position(store, sku)
        pos.on_hand = on_hand
        short = pos.confirmed - max(on_hand, 0)
        raised: list[Shortage] = []
        if short > 0:
            confirmed = sorted(((rid, r) for rid, r in self.reservations.items()
                                if r.store == store and r.sku == sku and r.state == "confirmed"),
                               key=lambda item: item[0], reverse=True)
            for rid, r in confirmed:
                if short <= 0:
                    break
                if rid not in self.shortages:
                    self.shortages[rid] = {"reservation_id": rid, "order_id": r.order_id, "store": store, "sku": sku,
                                           "qty": r.qty, "raised_ms": now_ms}
                    raised.append(self.shortages[rid])
                short -= r.qty
        return ok(on_hand=on_hand, confirmed=pos.confirmed, shortages=raised, movements=[])

    # ---- reservations ---------------------------------------------------------------------------------
    def op_reserve(self, c: Reserve, now_ms: int) -> Result:
        rid, order_id, store, sku, qty, ttl = c.reservation_id, c.order_id, c.store, c.sku, c.qty, c.ttl_ms
        if rid in self.reservations:
            raise CommandError(f"reserve: reservation {rid} exists already")
        pos = self.position(store, sku)
        free = pos.part(c.channel).available
        if free < qty:
            return rejected("insufficient", available=max(free, 0), presale=free <= 0)
        pos.count(c.channel, pending=qty)
        self.reservations[rid] = Reservation(order_id, store, sku, qty, "pending", now_ms + ttl, c.channel)
        return ok(expires_ms=now_ms + ttl, available=free - qty,
                  movements=[self._move(store, sku, "reserve", rid, pending=qty)])

    def op_confirm(self, c: Confirm, now_ms: int) -> Result:
        rid, r = self._reservation(c)
        if r.state == "confirmed":
            return ok(state=r.state, movements=[])
        if r.state != "pending":
            return rejected(f"reservation is {r.state}", state=r.state)
        self.position(r.store, r.sku).count(r.channel, pending=-r.qty, confirmed=r.qty)
        r.state = "confirmed"
        return ok(state=r.state, movements=[self._move(r.store, r.sku, "confirm", rid, pending=-r.qty, confirmed=r.qty)])

    def _release(self, rid: str, r: Reservation, state: str) -> Movement:
        counter = "pending" if r.state == "pending" else "confirmed"
        pos = self.position(r.store, r.sku)
        pos.count(r.channel, **{counter: -r.qty})
        if pos.shares:
            pos.rebalance()  # freed units follow the ratios (a share that ended gives its units to the mall)
        r.state = state
        self.shortages.pop(rid, None)
        return self._move(r.store, r.sku, state, rid, **{counter: -r.qty})

    def op_cancel(self, c: Cancel, now_ms: int) -> Result:
        rid, r = self._reservation(c)
        if r.state not in ("pending", "confirmed"):
            return rejected(f"reservation is {r.state}", state=r.state)
        return ok(state="cancelled", movements=[self._release(rid, r, "cancelled")])

    def op_fulfil(self, c: Fulfil, now_ms: int) -> Result:
        """The store handed the goods over: they leave the escrow along with the confirmed reservation."""
        rid, r = self._reservation(c)
        if r.state != "confirmed":
            return rejected(f"reservation is {r.state}", state=r.state)
        qty = c.qty or r.qty
        if qty > r.qty:
            return rejected(f"fulfil of {qty}: the reservation holds {r.qty}", state=r.state)
        pos = self.position(r.store, r.sku)
        pos.count(r.channel, confirmed=-qty, escrow=-qty)
        pos.rebalance()  # the escrow shrank: the shares follow their ratios of what is left
        r.qty -= qty
        if r.qty == 0:
            r.qty, r.state = qty, "fulfilled"  # (a fulfilled reservation keeps what it handed over last)
            self.shortages.pop(rid, None)
        return ok(state=r.state, qty=qty, movements=[self._move(r.store, r.sku, "fulfil", rid, escrow=-qty,
                                                                confirmed=-qty)])

    def op_expire(self, c: Command, now_ms: int) -> Result:
        """Unpaid reservations past their expiry return to escrow; finished ones are dropped from memory."""
        moves, expired, dropped = [], [], 0
        for rid, r in list(self.reservations.items()):
            if r.state == "pending" and r.expires_ms <= now_ms:
                moves.append(self._release(rid, r, "expired"))
                expired.append(rid)
            elif r.state in ("cancelled", "expired", "fulfilled") and r.expires_ms + DEFAULT_RESERVATION_TTL_MS < now_ms:
                del self.reservations[rid]
                dropped += 1
        dropped += self.forget_old_ids(now_ms)
        return Result(status="ok", values={"expired": expired, "movements": moves}, noop=not (moves or dropped))

    def op_reroute(self, c: Reroute, now_ms: int) -> Result:
        """Move a reservation to another store that has the escrow (a shortage's remedy, or a transfer)."""
        rid, r = self._reservation(c)
        to_store = c.to_store
        if r.state not in ("pending", "confirmed") or to_store == r.store:
            return rejected("only a live reservation can move to another store", state=r.state)
        target = self.position(to_store, r.sku)
        free = target.part(r.channel).available  # the order's channel's share at the other store
        if free < r.qty:
            return rejected("insufficient", available=max(free, 0))
        counter = r.state
        source = self.position(r.store, r.sku)
        source.count(r.channel, **{counter: -r.qty})
        target.count(r.channel, **{counter: r.qty})
        if source.shares:
            source.rebalance()  # the units it held are free at the store it left
        moves = [self._move(r.store, r.sku, "reroute_out", rid, **{counter: -r.qty}),
                 self._move(to_store, r.sku, "reroute_in", rid, **{counter: r.qty})]
        r.store = to_store
        self.shortages.pop(rid, None)
        return ok(store=to_store, state=r.state, movements=moves)

    def op_carve(self, c: stock_blocks.Carve, now_ms: int) -> Result:
        return stock_blocks.carve(self, c, now_ms)  # a flash sale's block reservations: actors/stock_blocks.py

    def op_uncarve(self, c: stock_blocks.Uncarve, now_ms: int) -> Result:
        return stock_blocks.uncarve(self, c, now_ms)

    # ---- reads ------------------------------------------------------------------------------------------
    def view(self, store: str | None = None, sku: str | None = None) -> list[dict[str, Any]]:
        """Positions, by (store, sku): all, one store's, or one (store, sku) looked up directly - a read on the
        path of every stock-view request must not sort the whole chain's positions."""
        if store is not None and sku is not None:
            chosen = [((store, sku), self.positions[(store, sku)])] if (store, sku) in self.positions else []
        else:
            chosen = sorted(kv for kv in self.positions.items() if store is None or kv[0][0] == store)
        return [{"store": s, "sku": k, "escrow": p.escrow, "pending": p.pending, "confirmed": p.confirmed,
                 "available": p.available, "on_hand": p.on_hand, "ratio_bp": p.ratio_bp, "presale": p.available <= 0,
                 **({"channels": {ch: {"escrow": sh.escrow, "pending": sh.pending, "confirmed": sh.confirmed,
                                       "available": sh.available, "ratio_bp": sh.ratio_bp}
                                  for ch, sh in sorted(p.shares.items())}} if p.shares else {})}
                for (s, k), p in chosen]

    def availability(self, pairs: list[tuple[str, str]], channel: str = MALL) -> dict[str, int]:
        """Free units per (store, sku) in `channel`'s share (the mall's: "available" of `view`)."""
        return {f"{s}/{k}": max(self.positions[(s, k)].part(channel).available, 0) if (s, k) in self.positions else 0
                for s, k in pairs}

    def audit(self) -> list[str]:
        """Every broken invariant, described; empty when all hold."""
        problems = []
        pending: dict[tuple[str, str, str], int] = {}  # (store, sku, channel) -> units
        confirmed: dict[tuple[str, str, str], int] = {}
        for r in self.reservations.values():
            key = (r.store, r.sku, r.channel)
            if r.state == "pending":
                pending[key] = pending.get(key, 0) + r.qty
            elif r.state == "confirmed":
                confirmed[key] = confirmed.get(key, 0) + r.qty
        for (store, sku), p in self.positions.items():
            parts = [(MALL, p.part(MALL)), *sorted(p.shares.items())]
            for channel, part in parts:  # each channel's share on its own (with no shares: the position's totals)
                where = f"{store}/{sku}" + (f" {channel}" if p.shares else "")
                key = (store, sku, channel)
                if min(part.escrow, part.pending, part.confirmed) < 0:
                    problems.append(f"{where}: negative escrow/pending/confirmed "
                                    f"{part.escrow}/{part.pending}/{part.confirmed}")
                if part.pending + part.confirmed > part.escrow:
                    problems.append(f"{where}: reserved {part.pending + part.confirmed} exceeds escrow {part.escrow}")
                if part.pending != pending.get(key, 0) or part.confirmed != confirmed.get(key, 0):
                    problems.append(f"{where}: counters {part.pending}/{part.confirmed} disagree with reservations "
                                    f"{pending.get(key, 0)}/{confirmed.get(key, 0)}")
            if p.shares and sum(sh.ratio_bp for sh in p.shares.values()) > 10_000:
                problems.append(f"{store}/{sku}: channel ratios add up past 10000")
        return problems

    # ---- snapshots ---------------------------------------------------------------------------------------
    def state_snapshot(self) -> dict[str, Any]:
        return {
            "positions": [[s, k, p.escrow, p.pending, p.confirmed, p.on_hand, p.ratio_bp,
                           *([{ch: [sh.escrow, sh.pending, sh.confirmed, sh.ratio_bp] for ch, sh in p.shares.items()}]
                             if p.shares else [])]
                          for (s, k), p in self.positions.items()],
            "reservations": [[rid, r.order_id, r.store, r.sku, r.qty, r.state, r.expires_ms,
                              *([r.channel] if r.channel != MALL else [])]
                             for rid, r in self.reservations.items()],
            "shortages": list(self.shortages.values()),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        self.positions = {(s, k): _position(rest) for s, k, *rest in state["positions"]}
        self.reservations = {rid: Reservation(*rest) for rid, *rest in state["reservations"]}
        self.shortages = {s["reservation_id"]: s for s in state["shortages"]}


def _position(row: list[Any]) -> Position:
    """A snapshot's position: escrow, pending, confirmed, on_hand, ratio_bp[, {channel: share}] (no shares before
    channels)."""
    escrow, pending, confirmed, on_hand, ratio_bp, *shares = row
    return Position(escrow, pending, confirmed, on_hand, ratio_bp,
                    {ch: Share(*v) for ch, v in shares[0].items()} if shares else {})
