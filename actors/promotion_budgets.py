"""PromotionBudgets: the one chain-wide authority for budget-capped promotion rules (pure, no I/O).

A rule with `budget_fen` may give away at most that much in discounts and gift value, across every channel and
every API process; a rule with `per_member_limit` may be used at most that many times by one member. Several API
processes price orders at once, so the remaining budget cannot live in any one of them: it lives here, in one
durable actor (hosted by `cloud/runtime/hosting.py`, journaled like every actor), and every use is a command.

Guarantees:
- `Consume` (one order's uses of capped rules) is all or nothing: when any rule's remaining budget is below the
  fen asked, or the member used the rule up, nothing is taken and the answer names the short rules with what is
  left (the caller re-prices with `budgets_left` and consumes again under a new command id). Used fen never exceed
  a rule's cap (`audit` checks it).
- One order consumes at most once (`orders` by order id; a second Consume for an order that holds uses is
  refused as `already`), and `GiveBack` returns exactly what the order took, once (idempotent by order id).
- A store's till works offline, so it gets a share of a rule's budget in advance (`GrantShare`): the share is
  taken from the budget at once (no online order can spend it) and the store spends it without asking; its
  reported uses (`StoreUsed`) are debited from its share. A store claiming past its share is believed (the goods
  left) but the excess is counted as `over` against the store and never taken from the chain's remaining budget.
- The cap comes with each command from the rule book (the book is the source of truth for the amount); a cap
  raised by HQ raises what is left, a cap lowered below what was used leaves nothing left (never negative).
- `ReclaimShare` takes back the unused part of a store's share (the rule ended, was withdrawn or changed, or the
  share sat unused): share less what the store reported goes back to what is left, once (idempotent by id; a
  second reclaim finds nothing unused). A store that used part offline and reports it after the reclaim keeps it
  counted: its late use takes what the budget has left into its share (never past the cap) and only the rest is
  `over`. So `used` stays online orders + store shares (`audit`).
- Per-member limits count one chain-wide number per (rule, member): online orders' `Consume` and the tills' sales
  (`TillMemberUses`) add to the same count. A till sale is believed (the goods left): a use past the limit is
  counted and recorded as a conflict (`limit_conflicts`, the operator sees it, the newest `LIMIT_CONFLICTS_KEPT`
  kept), never refused. The sale's limited rules are remembered (`till_sales`, for `TILL_SALE_KEPT_MS`): a whole
  till return (`TillSaleReturned`) takes its uses off the member's count, once, as a cancelled online order does.
"""
from __future__ import annotations

from typing import Any, ClassVar

from actors.base import Command, IdempotentActor, Query, Result, ok, rejected
from protocol.schema import record, require

LIMIT_CONFLICTS_KEPT = 1000  # the newest conflicts kept for the operator (older ones dropped: bounded state)
TILL_SALE_KEPT_MS = 90 * 24 * 3_600_000  # a till sale's limited rules remembered this long for its return


@record
class Use:
    rule_id: str
    fen: int  # the discount or gift value the rule gave this order
    cap_fen: int  # the rule's budget_fen in the book the order was priced with (0: no fen cap)
    per_member_limit: int = 0  # the rule's per-member use limit (0: none)

    def __post_init__(self) -> None:
        require(self.rule_id != "", "use: rule_id must not be empty")
        require(self.fen >= 0 and self.cap_fen >= 0 and self.per_member_limit >= 0, "use: negative amount")


@record
class Consume(Command):
    """An online order's uses of capped rules (id: derived from the order and the pricing attempt)."""
    OP: ClassVar[str] = "consume"
    order_id: str
    member: str
    uses: tuple[Use, ...] = ()


@record
class GiveBack(Command):
    """The order was cancelled or expired: what it consumed goes back to the budgets."""
    OP: ClassVar[str] = "give_back"
    order_id: str


@record
class GrantShare(Command):
    """Carve `fen` of the rule's remaining budget out for a store's offline till (at most what is left)."""
    OP: ClassVar[str] = "grant_share"
    store: str
    rule_id: str
    fen: int
    cap_fen: int

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.fen > 0 and self.cap_fen > 0, "grant_share: fen and cap_fen must be positive")


@record
class StoreUsed(Command):
    """A store's till gave `fen` under the rule (id: the store's event id): debited from the store's share."""
    OP: ClassVar[str] = "store_used"
    store: str
    rule_id: str
    fen: int

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.fen > 0, "store_used: fen must be positive")


@record
class ReclaimShare(Command):
    """Take the unused part of a store's share of the rule back into the budget (`reason`: ended, withdrawn,
    changed, idle)."""
    OP: ClassVar[str] = "reclaim_share"
    store: str
    rule_id: str
    reason: str

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.reason in RECLAIM_REASONS, f"reclaim_share: reason one of {', '.join(RECLAIM_REASONS)}")


RECLAIM_REASONS = ("ended", "withdrawn", "changed", "idle")


@record
class MemberUse:
    rule_id: str
    per_member_limit: int

    def __post_init__(self) -> None:
        require(self.rule_id != "" and self.per_member_limit > 0, "member use: a rule id and a positive limit")


@record
class TillMemberUses(Command):
    """A till sale to a member used these limited rules (id: derived from the store's event id)."""
    OP: ClassVar[str] = "till_member_uses"
    store: str
    sale_id: str
    member: str
    offline: bool
    uses: tuple[MemberUse, ...] = ()


@record
class TillSaleReturned(Command):
    """A till sale came back whole (a believed return): its members' uses of limited rules are given back."""
    OP: ClassVar[str] = "till_sale_returned"
    store: str
    sale_id: str


@record
class BudgetsQuery(Query):
    """{rule_id: {"cap", "used", "left", "shares", "member_uses"}} for these rules (`member`: that member's uses)."""
    rule_ids: tuple[str, ...]
    member: str = ""

    def answer(self, actor: Any) -> Any:
        return {rid: actor.view(rid, self.member) for rid in self.rule_ids}


class PromotionBudgets(IdempotentActor):
    COMMANDS = (Consume, GiveBack, GrantShare, StoreUsed, ReclaimShare, TillMemberUses, TillSaleReturned)

    def __init__(self) -> None:
        super().__init__()
        self.caps: dict[str, int] = {}  # rule -> cap in fen, as the last command said
        self.used: dict[str, int] = {}  # rule -> fen taken by online orders and granted to stores
        self.orders: dict[str, dict[str, Any]] = {}  # order -> {"member", "uses": {rule: fen}}
        self.member_uses: dict[str, dict[str, int]] = {}  # rule -> member -> uses (online orders)
        self.shares: dict[str, dict[str, int]] = {}  # rule -> store -> fen granted
        self.store_used: dict[str, dict[str, int]] = {}  # rule -> store -> fen the store reported
        self.over: dict[str, dict[str, int]] = {}  # rule -> store -> fen reported past its share
        self.active: dict[str, dict[str, int]] = {}  # rule -> store -> when its share was last granted or used (ms)
        self.reclaimed: dict[str, dict[str, dict[str, Any]]] = {}  # rule -> store -> {"ms", "fen", "reason"} last
        self.limit_conflicts: list[dict[str, Any]] = []  # till uses past a member's limit (the sale stands)
        self.till_sales: dict[str, dict[str, Any]] = {}  # "store/sale" -> {"member", "rules", "at_ms"[, "ended"]}
        self.share_caps: dict[str, dict[str, int]] = {}  # rule -> store -> the cap its share was last granted under

    def left(self, rule_id: str) -> int:
        cap = self.caps.get(rule_id, 0)
        return max(cap - self.used.get(rule_id, 0), 0) if cap else 0

    def view(self, rule_id: str, member: str = "") -> dict[str, Any]:
        return {"cap": self.caps.get(rule_id, 0), "used": self.used.get(rule_id, 0), "left": self.left(rule_id),
                "shares": dict(self.shares.get(rule_id, {})), "store_used": dict(self.store_used.get(rule_id, {})),
                "over": dict(self.over.get(rule_id, {})), "active": dict(self.active.get(rule_id, {})),
                "reclaimed": dict(self.reclaimed.get(rule_id, {})),
                "member_uses": self.member_uses.get(rule_id, {}).get(member, 0) if member else 0}

    def op_consume(self, c: Consume, now_ms: int) -> Result:
        if c.order_id in self.orders:
            return rejected("already", uses=self.orders[c.order_id]["uses"])
        for u in c.uses:
            if u.cap_fen:
                self.caps[u.rule_id] = u.cap_fen
        short = []
        for u in c.uses:
            over_cap = bool(u.cap_fen) and u.fen > self.left(u.rule_id)
            used_up = bool(u.per_member_limit) and self.member_uses.get(u.rule_id, {}).get(c.member, 0) >= u.per_member_limit
            if over_cap or used_up:
                short.append(u.rule_id)
        if short:
            return rejected("budget", short=short, left={u.rule_id: self.left(u.rule_id) for u in c.uses})
        taken: dict[str, int] = {}
        for u in c.uses:
            if u.cap_fen:
                self.used[u.rule_id] = self.used.get(u.rule_id, 0) + u.fen
            taken[u.rule_id] = taken.get(u.rule_id, 0) + u.fen
            uses = self.member_uses.setdefault(u.rule_id, {})
            uses[c.member] = uses.get(c.member, 0) + 1
        self.orders[c.order_id] = {"member": c.member, "uses": taken}
        return ok(uses=taken, left={rid: self.left(rid) for rid in taken})

    def op_give_back(self, c: GiveBack, now_ms: int) -> Result:
        held = self.orders.pop(c.order_id, None)
        if held is None:
            return ok(given_back={})
        for rid, fen in held["uses"].items():
            if self.caps.get(rid):
                self.used[rid] = max(self.used.get(rid, 0) - fen, 0)
            uses = self.member_uses.get(rid, {})
            if uses.get(held["member"], 0) > 0:
                uses[held["member"]] -= 1
        # keep a tombstone so a late Consume for an ended order cannot take budget again
        self.orders[c.order_id] = {"member": held["member"], "uses": {}, "ended": True}
        return ok(given_back=held["uses"])

    def op_grant_share(self, c: GrantShare, now_ms: int) -> Result:
        self.caps[c.rule_id] = c.cap_fen
        fen = min(c.fen, self.left(c.rule_id))
        if fen <= 0:
            return rejected("budget", left=0)
        self.used[c.rule_id] = self.used.get(c.rule_id, 0) + fen
        shares = self.shares.setdefault(c.rule_id, {})
        shares[c.store] = shares.get(c.store, 0) + fen
        self.active.setdefault(c.rule_id, {})[c.store] = now_ms
        self.share_caps.setdefault(c.rule_id, {})[c.store] = c.cap_fen
        return ok(granted_fen=fen, share_fen=shares[c.store], left=self.left(c.rule_id),
                  generation=self.generation(c.rule_id, c.store))

    def op_store_used(self, c: StoreUsed, now_ms: int) -> Result:
        used = self.store_used.setdefault(c.rule_id, {})
        before = used.get(c.store, 0)
        used[c.store] = before + c.fen
        share = self.shares.get(c.rule_id, {}).get(c.store, 0)
        past = max(before + c.fen - share, 0) - max(before - share, 0)
        self.active.setdefault(c.rule_id, {})[c.store] = now_ms
        if past and c.store in self.reclaimed.get(c.rule_id, {}):
            # used offline before the store heard of the reclaim: counted from what the budget has left
            late = min(past, self.left(c.rule_id))
            if late:
                self.used[c.rule_id] = self.used.get(c.rule_id, 0) + late
                self.shares.setdefault(c.rule_id, {})[c.store] = share + late
                share, past = share + late, past - late
        if past:  # believed (the goods left) but the store's, not the chain's: the budget is not overspent
            over = self.over.setdefault(c.rule_id, {})
            over[c.store] = over.get(c.store, 0) + past
        return ok(store_used_fen=used[c.store], share_fen=share, over_fen=past)

    def op_reclaim_share(self, c: ReclaimShare, now_ms: int) -> Result:
        share = self.shares.get(c.rule_id, {}).get(c.store, 0)
        unused = max(share - self.store_used.get(c.rule_id, {}).get(c.store, 0), 0)
        if unused:
            self.shares[c.rule_id][c.store] = share - unused
            self.used[c.rule_id] = max(self.used.get(c.rule_id, 0) - unused, 0)
        generation = self.generation(c.rule_id, c.store) + 1  # this take-back's number (the store orders by it)
        self.reclaimed.setdefault(c.rule_id, {})[c.store] = {"ms": now_ms, "fen": unused, "reason": c.reason,
                                                              "generation": generation}
        return ok(returned_fen=unused, share_fen=share - unused, left=self.left(c.rule_id), generation=generation)

    def generation(self, rule_id: str, store: str) -> int:
        """How many times the store's share of the rule was taken back: a grant carries it, so the store ignores a
        grant older than a take-back it heard (`BudgetAllowanceGranted.generation`)."""
        return int((self.reclaimed.get(rule_id, {}).get(store) or {}).get("generation", 0))

    def op_till_member_uses(self, c: TillMemberUses, now_ms: int) -> Result:
        conflicts = []
        for u in c.uses:
            uses = self.member_uses.setdefault(u.rule_id, {})
            before = uses.get(c.member, 0)
            uses[c.member] = before + 1  # one count chain-wide: the member's online orders see it too
            if before >= u.per_member_limit:
                conflict = {"rule_id": u.rule_id, "member": c.member, "store": c.store, "sale_id": c.sale_id,
                            "offline": c.offline, "uses": before + 1, "limit": u.per_member_limit, "at_ms": now_ms}
                self.limit_conflicts.append(conflict)
                conflicts.append(conflict)
        del self.limit_conflicts[:-LIMIT_CONFLICTS_KEPT]
        if c.uses:  # remembered for the sale's return (`op_till_sale_returned`)
            self.till_sales.setdefault(f"{c.store}/{c.sale_id}", {"member": c.member, "rules": [], "at_ms": now_ms})
            self.till_sales[f"{c.store}/{c.sale_id}"]["rules"] += [u.rule_id for u in c.uses]
        return ok(conflicts=conflicts)

    def op_till_sale_returned(self, c: TillSaleReturned, now_ms: int) -> Result:
        sale = self.till_sales.get(f"{c.store}/{c.sale_id}")
        if sale is None or sale.get("ended"):
            return ok(given_back=[])
        for rid in sale["rules"]:
            uses = self.member_uses.get(rid, {})
            if uses.get(sale["member"], 0) > 0:
                uses[sale["member"]] -= 1
        given, sale["rules"], sale["ended"] = sale["rules"], [], True  # a tombstone: given back once
        return ok(given_back=given)

    def op_expire(self, c: Command, now_ms: int) -> Result:
        """Old command ids are forgotten (a day on), and till sales older than `TILL_SALE_KEPT_MS`; budgets never
        expire by themselves."""
        old = [k for k, v in self.till_sales.items() if now_ms - int(v.get("at_ms", 0)) > TILL_SALE_KEPT_MS]
        for k in old:
            del self.till_sales[k]
        return Result(status="ok", noop=not self.forget_old_ids(now_ms) and not old)

    def audit(self) -> list[str]:
        problems = []
        for rid, used in self.used.items():
            cap = self.caps.get(rid, 0)
            if cap and used > cap:
                problems.append(f"rule {rid}: {used} fen used past its cap of {cap}")
            online = sum(o["uses"].get(rid, 0) for o in self.orders.values())
            granted = sum(self.shares.get(rid, {}).values())
            if cap and online + granted != used:
                problems.append(f"rule {rid}: used {used} != online orders {online} + store shares {granted}")
        return problems

    def state_snapshot(self) -> dict[str, Any]:
        return {"caps": self.caps, "used": self.used, "orders": self.orders, "member_uses": self.member_uses,
                "shares": self.shares, "store_used": self.store_used, "over": self.over, "active": self.active,
                "reclaimed": self.reclaimed, "limit_conflicts": self.limit_conflicts, "share_caps": self.share_caps,
                "till_sales": self.till_sales}

    def restore_state(self, s: dict[str, Any]) -> None:
        self.caps, self.used, self.orders = s["caps"], s["used"], s["orders"]
        self.member_uses, self.shares = s["member_uses"], s["shares"]
        self.store_used, self.over = s["store_used"], s["over"]
        # snapshots from before shares were reclaimed or till member uses counted have none of these
        self.active, self.reclaimed = s.get("active", {}), s.get("reclaimed", {})
        self.limit_conflicts, self.share_caps = s.get("limit_conflicts", []), s.get("share_caps", {})
        self.till_sales = s.get("till_sales", {})


@record
class LimitConflictsQuery(Query):
    """Till uses past a member's limit (newest first, at most `limit`; `store`: that store's only)."""
    store: str = ""
    limit: int = 200

    def answer(self, actor: Any) -> Any:
        found = [c for c in actor.limit_conflicts if not self.store or c["store"] == self.store]
        return list(reversed(found))[:self.limit]


@record
class StoreSharesQuery(Query):
    """{rule_id: {"share", "store_used", "unused", "active_ms", "share_cap", "reclaimed"}} of every rule the store
    holds or held a share of."""
    store: str

    def answer(self, actor: Any) -> Any:
        out = {}
        for rid, shares in actor.shares.items():
            if self.store in shares:
                share, used = shares[self.store], actor.store_used.get(rid, {}).get(self.store, 0)
                out[rid] = {"share": share, "store_used": used, "unused": max(share - used, 0),
                            "active_ms": actor.active.get(rid, {}).get(self.store, 0),
                            "share_cap": actor.share_caps.get(rid, {}).get(self.store, 0),
                            "reclaimed": actor.reclaimed.get(rid, {}).get(self.store)}
        return out


def reclaim_reason(rule: Any, held: dict[str, Any], now_ms: int, idle_ms: int) -> str | None:
    """Why the store's unused share of a rule goes back to the budget now, or None (pure: `rule` the book's rule or
    None, `held` a `StoreSharesQuery` entry). A rule gone from the book was withdrawn; its cap not the one the
    share was granted under, changed; past its end, ended; no grant or use for `idle_ms`, idle."""
    if held["unused"] <= 0:
        return None
    if rule is None or not getattr(rule, "budget_fen", 0):
        return "withdrawn"
    if held["share_cap"] and rule.budget_fen != held["share_cap"]:
        return "changed"
    if rule.ends_ms and now_ms >= rule.ends_ms:
        return "ended"
    if held["active_ms"] and now_ms - held["active_ms"] >= idle_ms:
        return "idle"
    return None
