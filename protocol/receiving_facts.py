"""What the cloud believes of a store's receiving and shrinkage notes (DESIGN.md 4b, `protocol.store_facts` style).

A store is believed only about its own facts: a `GoodsReceived` for its own receiving (a receiving id no other
store, and no other event, has used; a delivery note it has not recorded under another receiving) of products in
the catalogue at a unit cost within reason (at most COST_OVER_PRICE_MAX times the list price) whose lines are the
stock the store moved for it (per SKU and lot, the lines' quantities are the `StockMoved` reason "receiving" with
the receiving id as reference, recorded already or in the same batch: a note with no movements is not believed); a
`ShrinkageRecorded` only about a shrinkage movement of its own (that movement, in the cloud or
in the same batch, names the same shrinkage id, SKU and quantity). Pure: the shell gathers `ReceivingKnown` for a
batch; each refusal names the store, what it claimed and why.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from protocol.messages import Message, StockMoved
from protocol.receiving_messages import GoodsReceived, ShrinkageRecorded

# A lot's unit cost past this many times the product's list price is a typo or an attempt to inflate the losses
# valued at it: not believed.
COST_OVER_PRICE_MAX = 10


@dataclass
class ReceivingKnown:
    """For one batch: `receivings` receiving id -> (store, event id) recorded; `notes` (store, supplier, note_no) ->
    receiving id recorded; `moves` event id -> (store, sku, -delta, reference) of recorded shrinkage movements."""
    products: frozenset[str] = frozenset()
    prices: dict[str, int] = field(default_factory=dict)  # sku -> list price (a unit cost is bounded by it)
    receivings: dict[str, tuple[str, str]] = field(default_factory=dict)
    notes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    moves: dict[str, tuple[str, str, int, str]] = field(default_factory=dict)
    # (store, receiving id, sku, lot) -> what the recorded receiving movements of that receiving moved into the lot
    received: dict[tuple[str, str, str, str], int] = field(default_factory=dict)


def receiving_moves(events: list[Message]) -> dict[tuple[str, str, str, str], int]:
    """(store, receiving id, sku, lot) -> what the batch's receiving movements moved into the lot."""
    moved: dict[tuple[str, str, str, str], int] = {}
    for e in events:
        if isinstance(e, StockMoved) and e.reason == "receiving":
            for lot, delta in ([(x.lot, x.delta) for x in e.lots] or [("", e.delta)]):
                key = (e.store_id, e.reference, e.sku, lot)
                moved[key] = moved.get(key, 0) + delta
    return moved


def named(events: list[Message]) -> tuple[set[str], set[str]]:
    """The receiving ids and the movement event ids the batch's notes name (what the shell looks up)."""
    return ({e.receiving_id for e in events if isinstance(e, GoodsReceived)},
            {e.movement_event_id for e in events if isinstance(e, ShrinkageRecorded)})


def judge_receiving(events: list[Message], known: ReceivingKnown) -> dict[str, str]:
    """event id -> why, for the batch's receiving and shrinkage notes the cloud does not believe (in batch order:
    a note believed earlier in the batch counts against later ones)."""
    refused: dict[str, str] = {}
    receivings = dict(known.receivings)
    notes = dict(known.notes)
    moves = dict(known.moves)
    received = dict(known.received)
    for key, qty in receiving_moves(events).items():
        received[key] = received.get(key, 0) + qty
    for e in events:
        if isinstance(e, StockMoved) and e.reason == "shrinkage":
            moves.setdefault(e.event_id, (e.store_id, e.sku, -e.delta, e.reference))
    for e in events:
        why = ""
        if isinstance(e, GoodsReceived):
            used = receivings.get(e.receiving_id)
            note = notes.get((e.store_id, e.supplier, e.note_no))
            unknown = sorted({line.sku for line in e.lines} - known.products)
            dear = [line for line in e.lines if line.sku in known.prices
                    and line.unit_cost_fen > COST_OVER_PRICE_MAX * known.prices[line.sku]]
            if used is not None and used[0] != e.store_id:
                why = f"receiving {e.receiving_id} is store {used[0]}'s"
            elif used is not None and used[1] != e.event_id:
                why = f"receiving {e.receiving_id} was recorded already (event {used[1]})"
            elif note is not None and note != e.receiving_id:
                why = f"delivery note {e.note_no} of {e.supplier} was received already as {note}"
            elif unknown:
                why = f"unknown products {', '.join(unknown[:5])}"
            elif dear:
                why = (f"unit cost {dear[0].unit_cost_fen} fen of {dear[0].sku} is over {COST_OVER_PRICE_MAX} times its "
                       f"list price {known.prices[dear[0].sku]} fen")
            elif differ := _unmoved(e, received):
                why = differ
            else:
                receivings[e.receiving_id] = (e.store_id, e.event_id)
                notes[(e.store_id, e.supplier, e.note_no)] = e.receiving_id
        elif isinstance(e, ShrinkageRecorded):
            move = moves.get(e.movement_event_id)
            if move is None:
                why = f"no shrinkage movement {e.movement_event_id}"
            elif move[0] != e.store_id:
                why = f"shrinkage movement {e.movement_event_id} is store {move[0]}'s"
            elif move[1:] != (e.sku, e.qty, e.shrinkage_id):
                why = (f"shrinkage movement {e.movement_event_id} took {move[2]} of {move[1]} as {move[3] or '-'}, "
                       f"not {e.qty} of {e.sku} as {e.shrinkage_id}")
        if why:
            refused[e.event_id] = f"store {e.store_id} {e.KIND} refused: {why}"
    return refused


def _unmoved(e: GoodsReceived, received: dict[tuple[str, str, str, str], int]) -> str:
    """Why the note's lines are not what its receiving movements moved ("" when they are), per SKU and lot."""
    lines: dict[tuple[str, str], int] = {}
    for line in e.lines:
        if line.qty:
            lines[(line.sku, line.lot)] = lines.get((line.sku, line.lot), 0) + line.qty
    moved = {(sku, lot): qty for (store, rid, sku, lot), qty in received.items()
             if (store, rid) == (e.store_id, e.receiving_id) and qty}
    for sku, lot in sorted(set(lines) | set(moved)):
        if lines.get((sku, lot), 0) != moved.get((sku, lot), 0):
            return (f"receiving {e.receiving_id}: {lines.get((sku, lot), 0)} of {sku} lot {lot or '-'} on the note, "
                    f"but its receiving movements moved {moved.get((sku, lot), 0)}")
    return ""
