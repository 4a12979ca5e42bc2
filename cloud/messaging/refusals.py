"""The bridge's side of trust: what the cloud knows to judge a batch of store events, and dead-letter rows.

`protocol.store_facts` decides what a store may say; this shell gathers what it needs (members, orders, reported
on-hand, the stock pool's escrow, the grants already applied as loans) for the ids one batch names - one query
each, only when the batch names any.
Dead-letter rows keep at most `DEAD_LETTER_RAW_MAX` bytes of the frame (migration 11 trims them per store).
"""
from __future__ import annotations

import json

from protocol import order_lifecycle as lifecycle
from protocol import subjects
from protocol.errors import ProtocolError
from protocol.messages import EscrowGranted
from protocol.store_facts import Known, OrderFacts, granted_pairs, named_members, named_orders

DEAD_LETTER_RAW_MAX = 4096  # bytes of a refused frame kept: enough to see what it was (the row says its size)
DEAD_LETTERS_PER_STORE = 1000  # kept per store (newest); the trigger of migration 11 holds the same numbers
DEAD_LETTER_MAX_AGE_MS = 30 * 86_400_000
CLAIM_SUFFIX = ":claim"  # a pick claim's timeline key: `<event id>:claim` (cloud/services/pick_claims.py)
INSERT_SQL = """insert into dead_letters (subject, store_id, reason, raw, raw_bytes, at_ms)
                values ($1, $2, $3, $4, $5, $6)"""


class RefusedEvent(Exception):
    """Raised while applying an event the store may not say (past a limit, about what is not its own): the bridge
    dead-letters it at once with this reason and tells the store (a `refused` business ack), instead of retrying."""


def store_of(subject: str) -> str:
    try:
        return subjects.store_from_subject(subject)
    except ProtocolError:
        return ""


def dead_row(subject: str, reason: str, raw: bytes, at_ms: int) -> tuple:
    """One dead_letters row: the subject the store published on (not the stored one, with its partition), its store,
    the reason, the first DEAD_LETTER_RAW_MAX bytes and the size."""
    subject = subjects.published_subject(subject)
    return subject, store_of(subject), reason, raw[:DEAD_LETTER_RAW_MAX], len(raw), at_ms


async def pick_claims(db, order_ids: list[str]) -> dict[str, dict[str, str]]:
    """order -> store -> the event id whose `OrderPicked` claimed that store's part (cloud/services/pick_claims.py)."""
    rows = await db.fetch("select order_id, store_id, event_key from order_events where order_id = any($1::text[]) "
                          "and event = $2", order_ids, lifecycle.PICK_CLAIMED)
    found: dict[str, dict[str, str]] = {}
    for r in rows:
        found.setdefault(r["order_id"], {})[r["store_id"]] = r["event_key"].removesuffix(CLAIM_SUFFIX)
    return found


async def known_for(cloud, events) -> Known:
    """What the cloud knows about the members, orders and (store, sku) grants `events` name."""
    known = Known()
    members, orders, pairs = named_members(events), named_orders(events), granted_pairs(events)
    if members:
        known.members = {r["member_id"] for r in await cloud.db.fetch(
            "select member_id from members where member_id = any($1::text[])", list(members))}
    if orders:
        part_status: dict[str, dict[str, str]] = {}
        for r in await cloud.db.fetch("select order_id, store_id, status from order_parts "
                                      "where order_id = any($1::text[])", list(orders)):
            part_status.setdefault(r["order_id"], {})[r["store_id"]] = r["status"]
        claims = await pick_claims(cloud.db, list(orders))
        for r in await cloud.db.fetch("select order_id, kind, status, allocation, allow_substitutions from orders "
                                      "where order_id = any($1::text[])", list(orders)):
            allocation = r["allocation"]
            stores = (json.loads(allocation) if isinstance(allocation, str) else allocation) or {}
            parts = {s: {line["sku"]: line["qty"] for line in lines} for s, lines in stores.items()
                     if isinstance(lines, list)}
            known.orders[r["order_id"]] = OrderFacts(r["order_id"], r["kind"], r["status"], frozenset(stores),
                                                     parts, bool(r["allow_substitutions"]),
                                                     part_status.get(r["order_id"], {}), claims.get(r["order_id"], {}))
        catalogue = cloud.world.catalogue  # picked weights are judged against each product's tolerance
        known.tolerances = {p.sku: p.catch_weight_tolerance_bp for p in catalogue.by_sku.values() if p.weighed}
        known.products = frozenset(catalogue.by_sku)  # a substitute must be one
    if pairs:
        rows = await cloud.db.fetch(
            "select store_id, sku, on_hand from store_stock where (store_id, sku) in "
            "(select * from unnest($1::text[], $2::text[]))", [s for s, _ in pairs], [k for _, k in pairs])
        known.on_hand = {(r["store_id"], r["sku"]): r["on_hand"] for r in rows}
        for store, sku in pairs:  # grants are rare (a delivery received): one position each is cheap
            for p in await cloud.actors.stock_pool.positions(store, sku):
                known.escrow[(store, sku)] = p["escrow"]
        # after the positions: a loan is recorded before it is applied, so one these positions include is seen here
        grants = [e.event_id for e in events if isinstance(e, EscrowGranted)]
        known.applied_grants = {r["grant_event_id"] for r in await cloud.db.fetch(
            "select grant_event_id from escrow_borrows where grant_event_id = any($1::text[])", grants)}
    return known
