"""The stores' offline shares of budget-capped promotion rules (issue 17, item 4), kept by the bridge.

A till must never wait on the network, so a capped rule cannot be asked about per sale: the cloud grants each store
a share of the rule's budget in advance (escrow-like), carved out of the budget by the one PromotionBudgets actor
(`GrantShare`), and tells the store its total share (`BudgetAllowanceGranted`). The till gives the rule only while
its share lasts (edge/core/budget_allowance.py) and reports each sale's uses (`BudgetUsed`), which are debited from
that store's share (`StoreUsed`); a store is believed only about itself (the event's own store), and a claim past
its share is counted against the store, never against the chain's remaining budget.

Guarantees:
- A till's uses (`BudgetUsed`) are debited in the bridge's actor-effects step and recorded in its transaction, before
  the batch is acked: an actor not answering holds the batch (retried, not acked); a re-send is applied once.
- Shares are granted in steps of `SHARE_BP` of the cap, at most what is left; a step's command id derives from the
  store, the rule, the share the store holds before it and the budget's used fen and cap as the actor said, so two
  bridge processes granting at once grant once, and a refusal is asked again once budget comes back.
- A store that used more than half of its current step gets the next one (if the budget has any left) right after
  the batch that reported it (in the background: the bridge's batches never wait on a top-up); any store the bridge
  hears from is checked at most every `CHECK_EVERY_MS` for a capped rule it holds no share of (a new book, a new
  store).
- The grant message carries the TOTAL share and the number of take-backs before it (`generation`): duplicates and
  reordering are harmless at the store, and a grant from before a take-back does not raise the share again.
- Unused shares are taken back (the rule ended, was withdrawn or changed, or the share sat idle) with the same
  checks: cloud/messaging/budget_reclaims.py.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import logging

from actors.promotion_budgets import GrantShare, MemberUse, StoreUsed, TillMemberUses, TillSaleReturned
from cloud.messaging import budget_reclaims, to_stores
from protocol.budget_messages import BudgetAllowanceGranted, BudgetUsed
from protocol.ids import derived_id
from protocol.messages import Message, SaleCommitted
from protocol.return_messages import GoodsReturned

SHARE_BP = 1000  # a store's step: a tenth of the rule's budget
CHECK_EVERY_MS = 5_000
STOP_S = 10.0  # at most this long, when the cloud stops, for the share checker to finish
log = logging.getLogger("freshmesh.budgets")


async def admit(cloud, events: list[Message]) -> dict[str, str]:
    """event id -> why refused, for the batch's BudgetUsed a store may not claim: its sale must be a sale of this
    store (believed in this batch or recorded in `till_sales`) with the member it names (none: none). A store is
    believed only about its own sales' members, never about another member's uses."""
    mine = [e for e in events if isinstance(e, BudgetUsed)]
    if not mine:
        return {}
    sales = {(e.store_id, e.sale_id): e.member_id or "" for e in events if isinstance(e, SaleCommitted)}
    wanted = [e.sale_id for e in mine if (e.store_id, e.sale_id) not in sales]
    if wanted:
        for r in await cloud.db.fetch("select sale_id, store_id, member_id from till_sales "
                                      "where sale_id = any($1::text[])", wanted):
            sales.setdefault((r["store_id"], r["sale_id"]), r["member_id"] or "")
    refused: dict[str, str] = {}
    for e in mine:
        member = sales.get((e.store_id, e.sale_id))
        if member is None:
            refused[e.event_id] = f"budget.used: store {e.store_id} has no sale {e.sale_id}"
        elif member != (e.member_id or ""):
            refused[e.event_id] = (f"budget.used: sale {e.sale_id} of store {e.store_id} is not member "
                                   f"{e.member_id or '(none)'}'s")
    return refused


class StoreBudgets:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.checked: dict[str, int] = {}  # store -> when its shares were last checked (this process)
        self._task: asyncio.Task | None = None  # the one background checker (after batches and heartbeats)
        self._pending: set[tuple[str, str]] = set()  # (store, rule) pairs it is to check
        self.reclaims_due: set[str] = set()  # stores whose unused shares are to be checked for taking back
        self._stopped = False

    async def apply(self, event: BudgetUsed) -> None:
        """One till sale's uses debited from its store's share: the bridge's actor-effects step, before the batch's
        commit and ack. Raises when the actor does not answer (the batch is retried, not acked); a re-sent use
        answers `exists` (its id derives from the event id)."""
        budgets = self.cloud.actors.budgets
        for u in event.uses:
            r = await budgets.send(StoreUsed(id=derived_id(event.event_id, f"used:{u.rule_id}"), store=event.store_id,
                                             rule_id=u.rule_id, fen=u.fen))
            if r.settled.get("over_fen"):
                log.warning("store %s gave %s fen of rule %s past its share (sale %s)", event.store_id,
                            r.settled["over_fen"], u.rule_id, event.sale_id)
        # the member's one chain-wide count, against the book's limit (never the store's word for it); a rule the
        # book does not limit is not counted (made-up rule ids never reach the actor); past the limit: a conflict
        by_id = self.cloud.world.rule_book.by_id
        limited = tuple(MemberUse(rule_id=u.rule_id, per_member_limit=rule.per_member_limit)
                        for u in event.member_uses
                        if (rule := by_id.get(u.rule_id)) is not None and rule.per_member_limit)
        if limited:
            r = await budgets.send(TillMemberUses(
                id=derived_id(event.event_id, "member-uses"), store=event.store_id, sale_id=event.sale_id,
                member=event.member_id, offline=event.offline, uses=limited))
            for c in r.settled.get("conflicts", ()) or ():
                log.warning("store %s: member %s used rule %s %d times, past its limit of %d (sale %s, %s)",
                            c["store"], c["member"], c["rule_id"], c["uses"], c["limit"], c["sale_id"],
                            "offline" if c["offline"] else "online")

    async def returned(self, event, whole: bool) -> None:
        """A believed till return that brings its sale back whole: the sale's member uses of limited rules given
        back (once: the command's id derives from the return's event id, and the actor gives a sale back once).
        Raises when the actor does not answer (the batch is retried, not acked)."""
        if not whole or not isinstance(event, GoodsReturned) or not event.sale_id:
            return
        r = await self.cloud.actors.budgets.send(TillSaleReturned(id=derived_id(event.event_id, "member-uses-back"),
                                                                  store=event.store_id, sale_id=event.sale_id))
        if r.settled.get("given_back"):
            log.info("store %s: sale %s returned whole, member uses of %s given back", event.store_id,
                     event.sale_id, r.settled["given_back"])

    @staticmethod
    def rows(events: list) -> list[tuple]:
        """budget_uses rows of the till sales' uses; a till sale's key is "store:<store>:<sale>" (an online order's
        is its order id: the two never collide)."""
        return [(f"store:{e.store_id}:{e.sale_id}", u.rule_id, u.fen, e.store_id, e.wall_ms)
                for e in events if isinstance(e, BudgetUsed) for u in e.uses]

    async def record(self, conn, events: list) -> None:
        """The record for SQL readers (reports, the demo's summary), in the bridge's transaction."""
        rows = self.rows(events)
        if rows:
            await conn.executemany(
                "insert into budget_uses (order_id, rule_id, fen, member_id, store_id, used_ms, channel) "
                "values ($1, $2, $3, '-', $4, $5, 'offline') on conflict do nothing", rows)

    def after(self, new: list) -> None:
        """After the batch is applied (its uses debited by `apply`) and acked: the stores' shares topped up in the
        background, so that the bridge's next batch never waits on it. Never raises (a top-up is checked again at
        the store's next batch or heartbeat; every step is idempotent)."""
        touched = {(e.store_id, u.rule_id) for e in new if isinstance(e, BudgetUsed) for u in e.uses}
        for store in {e.store_id for e in new}:
            touched.update(self._due(store))
        self._check(touched)

    def _due(self, store: str) -> set[tuple[str, str]]:
        """(store, capped rule) pairs to check, when the store was last checked `CHECK_EVERY_MS` ago or more."""
        now = self.cloud.now_ms()
        if now - self.checked.get(store, 0) < CHECK_EVERY_MS or store not in self.cloud.world.stores:
            return set()
        self.checked[store] = now
        self.reclaims_due.add(store)  # its unused shares checked too (cloud/messaging/budget_reclaims.py)
        return {(store, r.id) for r in self.cloud.world.rule_book.rules if r.budget_fen}

    async def _reclaim_due(self) -> None:
        while self.reclaims_due:
            store = min(self.reclaims_due)
            await budget_reclaims.check(self.cloud, store)  # raises: checked again at its next heartbeat
            self.reclaims_due.discard(store)

    def heard(self, store: str) -> None:
        """A store's heartbeat: its shares are checked in the background when due (the heartbeat path never
        waits on an actor)."""
        self._check(self._due(store))

    def _check(self, pairs: set[tuple[str, str]]) -> None:
        """Queue these (store, rule) pairs for the one background checker, started if it is not running."""
        if self._stopped:
            return  # stopping: checked again by whichever instance applies the store next
        self._pending.update(pairs)
        if (self._pending or self.reclaims_due) and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._top_up_all())

    async def stop(self, timeout_s: float = STOP_S) -> None:
        """Let the checker finish what it has begun (a share granted is told to its store before the process
        ends: else the store keeps its older, smaller share until it uses half of it), queue nothing more; after
        `timeout_s` it is cancelled (every step is idempotent: the next check grants nothing twice)."""
        self._stopped = True
        task = self._task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            log.warning("promotion budgets: the share checker did not finish within %.0f s of stopping", timeout_s)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _top_up_all(self) -> None:
        while self._pending or self.reclaims_due:
            pairs, self._pending = self._pending, set()
            try:
                await self._reclaim_due()
                for store, rule_id in sorted(pairs):
                    await self.top_up(store, rule_id)
            except Exception:  # noqa: BLE001 - checked again at the store's next batch or heartbeat
                log.exception("promotion budgets: shares of %s not checked", sorted({s for s, _ in pairs}))
                for store, _ in pairs:
                    self.checked.pop(store, None)
                return

    async def top_up(self, store: str, rule_id: str) -> int:
        """Grant the store its next step of the rule when it has none, or used more than half of what it holds;
        tell the store its total share. Returns the total."""
        rule = self.cloud.world.rule_book.by_id.get(rule_id)
        if rule is None or not rule.budget_fen:
            return 0
        budgets = self.cloud.actors.budgets
        view = (await budgets.budgets([rule_id]))[rule_id]
        share, used = view["shares"].get(store, 0), view["store_used"].get(store, 0)
        if budget_reclaims.regrant_blocked(rule, {"reclaimed": view.get("reclaimed", {}).get(store)},
                                           self.cloud.now_ms()):
            return int(share)  # ended, or taken back as idle a while ago: no new share now
        step = max(rule.budget_fen * SHARE_BP // 10_000, 1)
        if share and share - used > step // 2:
            return int(share)
        r = await budgets.send(GrantShare(id=self._grant_id(store, rule_id, view, rule.budget_fen), store=store,
                                          rule_id=rule_id, fen=step, cap_fen=rule.budget_fen))
        total = int(r.settled.get("share_fen", share))
        # the take-backs before this total: the store ignores a grant older than a take-back it heard
        generation = int(r.settled.get("generation", (view.get("reclaimed", {}).get(store) or {}).get("generation", 0)))
        if total > 0:  # the store keeps the highest total it hears: telling it again is harmless
            await to_stores.send(self.cloud, store, functools.partial(BudgetAllowanceGranted, rule_id=rule_id,
                                                                    granted_fen=total, generation=generation))
        return total

    @staticmethod
    def _grant_id(store: str, rule_id: str, view: dict, cap_fen: int) -> str:
        """A step's command id: the store, the rule, the share it holds and the budget as the actor last said (used,
        cap). Two processes seeing the same budget grant once; a refusal (nothing left) is not the answer once
        budget comes back (an order given back, a raised cap): that is a new id."""
        share = view["shares"].get(store, 0)
        key = f"{store}/{rule_id}/{share}/{view.get('used', 0)}/{cap_fen}"
        return "share:" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
