"""Block reservations in the StockPool: a flash sale holds one reservation per store (its *block*), and each of its
orders, once assigned to a store, has its own reservation carved out of that store's block.

Guarantees (the StockPool's audit still holds at every step: a carve or a return moves units between reservations
of one (store, sku), never in or out of the escrow's `pending + confirmed`):
- `carve` takes an order's units from the first block (in the caller's preference, or the fullest one) that still
  has them; the carved reservation expires with its block. A carve is idempotent by reservation id: the same order
  carved again answers the store it was carved from, and takes nothing more.
- `uncarve` gives an unpaid or paid order's units back to its block while the block is live, so the sale can sell
  them again; once the block has ended (expired or released) they go back to the store's escrow. Returning twice,
  or an order whose reservation has ended, changes nothing.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

from actors.base import Command, CommandError, Result, ok, rejected
from protocol.schema import record, require

if TYPE_CHECKING:
    from actors.stock_pool import StockPool


@record
class Carve(Command):
    """An order's own reservation, carved out of one of `blocks` (reservation ids, same sku) in that order of
    preference (`fullest`: the block with the most units left first). Values: store, block, expires_ms; rejected
    `insufficient` when no block has `qty` left (with `left`: units per block)."""
    OP: ClassVar[str] = "carve"
    reservation_id: str
    order_id: str
    sku: str
    qty: int
    blocks: tuple[str, ...]
    fullest: bool = False

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.qty > 0, "carve: qty must be positive")
        require(len(self.blocks) > 0, "carve: at least one block")


@record
class Uncarve(Command):
    """An order's carved units go back to its block (or to escrow, once the block has ended). Values: to
    (block | escrow | nothing)."""
    OP: ClassVar[str] = "uncarve"
    reservation_id: str
    block_id: str
    sku: str


LIVE = ("pending", "confirmed")


def carve(pool: StockPool, c: Carve, now_ms: int) -> Result:
    existing = pool.reservations.get(c.reservation_id)
    if existing is not None:  # carved before (another command id for the same order): the same answer
        if existing.sku != c.sku or existing.qty != c.qty or existing.order_id != c.order_id:
            raise CommandError(f"carve: reservation {c.reservation_id} exists with other content")
        return ok(store=existing.store, block="", expires_ms=existing.expires_ms, movements=[])
    blocks = []
    for bid in c.blocks:
        block = pool.reservations.get(bid)
        if block is not None and block.sku == c.sku and block.state == "pending" and block.expires_ms > now_ms:
            blocks.append((bid, block))
    if c.fullest:
        blocks.sort(key=lambda item: -item[1].qty)
    for bid, block in blocks:
        if block.qty >= c.qty:
            block.qty -= c.qty
            pool.reservations[c.reservation_id] = dataclasses.replace(block, order_id=c.order_id, qty=c.qty)
            return ok(store=block.store, block=bid, expires_ms=block.expires_ms,
                      movements=[pool._move(block.store, c.sku, "carve", c.reservation_id)])
    return rejected("insufficient", left={bid: b.qty for bid, b in blocks})


def uncarve(pool: StockPool, c: Uncarve, now_ms: int) -> Result:
    r = pool.reservations.get(c.reservation_id)
    if r is None or r.sku != c.sku:
        raise CommandError(f"uncarve: unknown reservation {c.reservation_id} of {c.sku}")
    if r.state not in LIVE:
        return ok(to="nothing", state=r.state, movements=[])
    block = pool.reservations.get(c.block_id)
    live = (block is not None and block.state == "pending" and block.store == r.store and block.sku == r.sku
            and block.expires_ms > now_ms)
    if block is None or not live:  # the sale's block has ended: the units go back to the store's escrow
        move = pool._release(c.reservation_id, r, "cancelled")
        return ok(to="escrow", movements=[move])
    pos = pool.position(r.store, r.sku)
    moves = [pool._move(r.store, r.sku, "uncarve", c.reservation_id)]
    if r.state == "confirmed":  # a paid order cancelled: its units are unpaid again, in the block
        pos.count(r.channel, pending=r.qty, confirmed=-r.qty)
        moves = [pool._move(r.store, r.sku, "uncarve", c.reservation_id, pending=r.qty, confirmed=-r.qty)]
    block.qty += r.qty
    r.state = "cancelled"
    pool.shortages.pop(c.reservation_id, None)
    return ok(to="block", movements=moves)
