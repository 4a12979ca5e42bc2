"""What a store may tell the cloud about transfers between stores (issue 16 item 5), in the spirit of
`protocol.store_facts`: a store is believed only about its own side of a transfer.

- Store B may ask (`TransferRequested`) only for itself (`store_id` is the receiving store), from another known
  store, for products of the catalogue, under a transfer id not used before.
- Store A may dispatch (`TransferDispatched`) only a transfer asked of A (its `from_store`), still requested (or
  cancelled by HQ after A dispatched it offline: the goods left, so the dispatch is taken), only
  SKUs asked and per SKU at most the asked quantity, and exactly what its own `transfer_out` movements with the
  transfer's id took off the stock it reported (a movement never leaves on-hand negative): A cannot say it sent
  what it did not take off its shelf. A `transfer_out` movement itself is believed only for a transfer asked of
  that store and not dispatched yet, within the SKU's asked quantity, and not when its dispatch is refused: a
  refused dispatch takes nothing off the store's stock in the cloud.
- Store B may receive (`TransferReceived`) only a transfer sent to B (its `to_store`) and dispatched, only lots that
  were dispatched (name and use-by), each at most `over_receipt_max` of what was dispatched (the rest is the
  discrepancy, recorded), and exactly what its `transfer_in` movements put on its stock; a `transfer_in` movement
  itself is believed only for such a transfer, into lots dispatched (name and use-by), and within the same bound:
  stock is never made out of nothing.

Pure: the shell gathers what the cloud knows (`TransfersKnown`) for one batch; events are judged in the batch's
order (each store's sequence order), so a step is judged against the steps believed before it in the same batch.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from protocol.lots import arrival_names
from protocol.messages import Message, StockMoved
from protocol.transfer_messages import TransferDispatched, TransferReceived, TransferRequested

# A receipt may be over what was dispatched by this share of the line (a weighed line reads a little heavier at the
# receiving store's scale), and always by one unit: recorded as a discrepancy. Past it, it is not believed.
OVER_RECEIPT_BP = 1_000


def over_receipt_max(dispatched: int) -> int:
    """The most that may be received of a line of which `dispatched` was sent."""
    return dispatched + max(1, dispatched * OVER_RECEIPT_BP // 10_000)


@dataclass(frozen=True)
class TransferFacts:
    transfer_id: str
    from_store: str
    to_store: str
    status: str  # requested | dispatched | received | cancelled
    asked: dict[str, int] = field(default_factory=dict)  # sku -> qty
    sent: dict[tuple[str, str], int] = field(default_factory=dict)  # (sku, lot) -> qty
    use_by: dict[tuple[str, str], str] = field(default_factory=dict)  # (sku, lot) -> its use-by, as dispatched


@dataclass
class TransfersKnown:
    transfers: dict[str, TransferFacts] = field(default_factory=dict)
    stores: frozenset[str] = frozenset()
    products: frozenset[str] = frozenset()
    # (transfer id, store, sku, "transfer_in" | "transfer_out") -> units those movements moved (recorded before)
    moved: dict[tuple[str, str, str, str], int] = field(default_factory=dict)


TRANSFER_REASONS = ("transfer_in", "transfer_out")


def discrepancies(sent: Iterable[tuple[str, str, str, int]],
                  received: Iterable[tuple[str, str, str, int]]) -> list[dict[str, Any]]:
    """Per dispatched line (sku, lot, use-by, qty): dispatched - received (`short` positive: short, negative: over);
    lines that agree are left out. The one reckoning of the store (its reply) and the cloud (its record)."""
    got = {(s, lot): q for s, lot, _, q in received}
    return [{"sku": s, "lot": lot, "use_by": u, "dispatched": q, "received": got.get((s, lot), 0),
             "short": q - got.get((s, lot), 0)} for s, lot, u, q in sent if got.get((s, lot), 0) != q]


def named_transfers(events: Iterable[Message]) -> set[str]:
    """The transfer ids a batch names (its transfer steps, and the references of its transfer movements)."""
    named: set[str] = set()
    for e in events:
        if isinstance(e, (TransferRequested, TransferDispatched, TransferReceived)):
            named.add(e.transfer_id)
        elif isinstance(e, StockMoved) and e.reason in TRANSFER_REASONS and e.reference:
            named.add(e.reference)
    return named


def judge_transfers(events: Iterable[Message], known: TransfersKnown) -> dict[str, str]:
    """event id -> why it is not believed, for the batch's transfer steps and transfer-in movements refused."""
    transfers = dict(known.transfers)
    moved = dict(known.moved)
    refused: dict[str, str] = {}
    outs: dict[tuple[str, str], list[StockMoved]] = {}  # (transfer id, store) -> its transfer_out movements believed
    for e in events:
        if isinstance(e, StockMoved) and e.reason in TRANSFER_REASONS:
            key = (e.reference, e.store_id, e.sku, e.reason)
            judged = _movement if e.reason == "transfer_in" else _out_movement
            why = judged(e, transfers.get(e.reference), moved.get(key, 0))
            if not why:
                moved[key] = moved.get(key, 0) + abs(e.delta)
                if e.reason == "transfer_out":
                    outs.setdefault((e.reference, e.store_id), []).append(e)
        elif isinstance(e, TransferRequested):
            why = _requested(e, transfers.get(e.transfer_id), known)
            if not why:
                transfers[e.transfer_id] = TransferFacts(e.transfer_id, e.from_store, e.store_id, "requested",
                                                         {x.sku: x.qty for x in e.lines})
        elif isinstance(e, TransferDispatched):
            why = _dispatched(e, transfers.get(e.transfer_id), moved)
            if not why:
                transfers[e.transfer_id] = replace(transfers[e.transfer_id], status="dispatched",
                                                   sent=_by_lot((x.sku, x.lot, x.qty) for x in e.lines),
                                                   use_by={(x.sku, x.lot): x.use_by for x in e.lines})
            else:  # its movements took nothing off in transit: they are not believed either
                for out in outs.pop((e.transfer_id, e.store_id), []):
                    refused[out.event_id] = (f"store {out.store_id} {out.KIND} refused: transfer_out of {out.delta} "
                                             f"{out.sku} for transfer {e.transfer_id}: its dispatch is refused")
        elif isinstance(e, TransferReceived):
            why = _received(e, transfers.get(e.transfer_id), moved)
            if not why:
                transfers[e.transfer_id] = replace(transfers[e.transfer_id], status="received")
        else:
            continue
        if why:
            refused[e.event_id] = f"store {e.store_id} {e.KIND} refused: {why}"
    return refused


def _dispatched_as(t: TransferFacts, sku: str, lot: str) -> str | None:
    """The dispatched lot that goods moved into `lot` at the receiving store came as: the same name, or the name the
    receiving store gave them because its lot of that name still held goods of another use-by
    (`protocol.lots.arrival_names`)."""
    for s, sent in t.sent:
        if s == sku and lot in arrival_names(sent, t.use_by.get((s, sent), "")):
            return sent
    return None


def _movement(e: StockMoved, t: TransferFacts | None, before: int) -> str:
    if e.delta < 0:
        return f"transfer_in of {e.delta} {e.sku}: a movement in is positive"
    if t is None or t.to_store != e.store_id or t.status != "dispatched":
        what = "no such transfer" if t is None else \
            f"it goes to {t.to_store}" if t.to_store != e.store_id else f"it is {t.status}, not in transit"
        return f"transfer_in of {e.delta} {e.sku} for transfer {e.reference}: {what}"
    for lot, use_by in ((d.lot, d.use_by) for d in e.lots) if e.lots else (("", ""),):
        sent = _dispatched_as(t, e.sku, lot)
        if sent is None:
            return (f"transfer_in of {e.delta} {e.sku} for transfer {e.reference}: lot {lot or '(unlotted)'} was not "
                    "dispatched")
        if e.lots and use_by != t.use_by.get((e.sku, sent), use_by):
            return (f"transfer_in of {e.delta} {e.sku} for transfer {e.reference}: lot {lot or '(unlotted)'} use-by "
                    f"{use_by}, dispatched with {t.use_by[(e.sku, sent)]}")
    bound = sum(over_receipt_max(q) for (sku, _), q in t.sent.items() if sku == e.sku)
    if before + e.delta > bound:
        return (f"transfer_in of {e.delta} {e.sku} for transfer {e.reference}: {before + e.delta} in all, past the "
                f"{bound} its dispatch allows")
    return ""


def _out_movement(e: StockMoved, t: TransferFacts | None, before: int) -> str:
    """A transfer_out movement comes just before its dispatch (in the same batch, or the dispatch in the next one):
    believed only for a transfer asked of this store and not dispatched yet, within what was asked of the SKU."""
    if e.delta > 0:
        return f"transfer_out of {e.delta} {e.sku}: a movement out is negative"
    if t is None or t.from_store != e.store_id or t.status not in ("requested", "cancelled"):
        what = "no such transfer" if t is None else \
            f"it is asked of {t.from_store}" if t.from_store != e.store_id else f"it is {t.status}, not to dispatch"
        return f"transfer_out of {e.delta} {e.sku} for transfer {e.reference}: {what}"
    if before - e.delta > t.asked.get(e.sku, 0):
        return (f"transfer_out of {e.delta} {e.sku} for transfer {e.reference}: {before - e.delta} in all, "
                f"{t.asked.get(e.sku, 0)} asked")
    return ""


def _requested(e: TransferRequested, t: TransferFacts | None, known: TransfersKnown) -> str:
    if t is not None:
        return f"transfer {e.transfer_id}: the id is taken (a transfer from {t.from_store} to {t.to_store})"
    if e.from_store not in known.stores:
        return f"transfer {e.transfer_id}: no store {e.from_store}"
    unknown = sorted({x.sku for x in e.lines} - known.products)
    if known.products and unknown:
        return f"transfer {e.transfer_id}: {unknown} are not products of the catalogue"
    return ""


def _by_lot(lines: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    total: dict[tuple[str, str], int] = {}
    for sku, lot, qty in lines:
        total[(sku, lot)] = total.get((sku, lot), 0) + qty
    return total


def _by_sku(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for sku, qty in lines:
        total[sku] = total.get(sku, 0) + qty
    return total


def _dispatched(e: TransferDispatched, t: TransferFacts | None, moved: dict[tuple[str, str, str, str], int]) -> str:
    if t is None:
        return f"dispatch of transfer {e.transfer_id}, which does not exist"
    if t.from_store != e.store_id:
        return f"dispatch of transfer {e.transfer_id}, which is not asked of this store (it is {t.from_store}'s)"
    if t.to_store != e.to_store:
        return f"dispatch of transfer {e.transfer_id} to {e.to_store}: it goes to {t.to_store}"
    if t.status not in ("requested", "cancelled"):  # cancelled: A sent it before it heard (the goods left)
        return f"dispatch of transfer {e.transfer_id}, which is {t.status}, not requested"
    for sku, qty in _by_sku((x.sku, x.qty) for x in e.lines).items():
        if sku not in t.asked:
            return f"dispatch of transfer {e.transfer_id}: {sku} was not asked"
        if qty > t.asked[sku]:
            return f"dispatch of transfer {e.transfer_id}: {qty} {sku} sent, {t.asked[sku]} asked"
        out = moved.get((e.transfer_id, e.store_id, sku, "transfer_out"), 0)
        if out != qty:
            return (f"dispatch of transfer {e.transfer_id}: {qty} {sku} sent, but its transfer_out movements took "
                    f"{out} off the store's stock")
    return ""


def _received(e: TransferReceived, t: TransferFacts | None, moved: dict[tuple[str, str, str, str], int]) -> str:
    if t is None:
        return f"receipt of transfer {e.transfer_id}, which does not exist"
    if t.to_store != e.store_id:
        return f"receipt of transfer {e.transfer_id}, which is not sent to this store (it goes to {t.to_store})"
    if t.from_store != e.from_store:
        return f"receipt of transfer {e.transfer_id} from {e.from_store}: it comes from {t.from_store}"
    if t.status != "dispatched":
        return f"receipt of transfer {e.transfer_id}, which is {t.status}, not in transit"
    for x in e.lines:
        if (x.sku, x.lot) not in t.sent:
            return f"receipt of transfer {e.transfer_id}: lot {x.lot or '(unlotted)'} of {x.sku} was not dispatched"
        if x.use_by != t.use_by.get((x.sku, x.lot), x.use_by):
            return (f"receipt of transfer {e.transfer_id}: lot {x.lot or '(unlotted)'} of {x.sku} use-by {x.use_by}, "
                    f"dispatched with {t.use_by[(x.sku, x.lot)]}")
        if x.qty > over_receipt_max(t.sent[(x.sku, x.lot)]):
            return (f"receipt of transfer {e.transfer_id}: {x.qty} {x.sku} of lot {x.lot or '(unlotted)'}, "
                    f"{t.sent[(x.sku, x.lot)]} dispatched")
    for sku, qty in _by_sku((x.sku, x.qty) for x in e.lines).items():
        got = moved.get((e.transfer_id, e.store_id, sku, "transfer_in"), 0)
        if got != qty:
            return (f"receipt of transfer {e.transfer_id}: {qty} {sku} received, but its transfer_in movements put "
                    f"{got} on the store's stock")
    return ""
