"""What the store prints, as ESC/POS bytes: the receipt of a sale and the pick ticket of an online order.

Pure: times are formatted from epoch ms with the chain's UTC offset (protocol.policy), never from the box's own
time zone, so every box prints the same slot for the same order.
"""
from __future__ import annotations

from edge.devices.escpos import Ticket
from protocol.messages import OrderToFulfil
from protocol.money import format_fen
from protocol.policy import CHAIN_UTC_OFFSET_MIN
from protocol.pricing import PricedBasket
from protocol.pricing.catalogue import Product

MS_PER_MIN = 60_000
MIN_PER_DAY = 24 * 60
NAME_COLUMN_CHARS = 20


def chain_time_of_day(epoch_ms: int, offset_min: int = CHAIN_UTC_OFFSET_MIN) -> str:
    """'HH:MM' in the chain's time zone."""
    minutes = (epoch_ms // MS_PER_MIN + offset_min) % MIN_PER_DAY
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def receipt(store_id: str, sale_id: str, priced: PricedBasket, method: str, tendered_fen: int,
            change_fen: int, member_phone_masked: str | None = None, survey_url: str = "") -> bytes:
    """`member_phone_masked`: the identified member's phone as the cache keeps it (masked: a receipt left on the
    counter must not give the number away). `survey_url`: the sale's satisfaction survey (a member's sale only)."""
    t = Ticket().text(f"FreshMesh {store_id}", bold=True, size=2, align="center").text(f"Sale {sale_id}")
    if member_phone_masked:
        t.text(f"Member {member_phone_masked}")
    for line in priced.lines:
        t.columns(line.name[:NAME_COLUMN_CHARS], format_fen(line.amount_fen))
    for rule in priced.applied:
        t.columns(rule.name[:NAME_COLUMN_CHARS], "-" + format_fen(rule.saving_fen))
    t.columns("TOTAL", format_fen(priced.total_fen)).text(f"Paid by {method}")
    if method == "cash":
        t.columns("Tendered", format_fen(tendered_fen)).columns("Change", format_fen(change_fen))
    t.qr(f"SALE:{sale_id}")
    if survey_url:  # answered once, for points (cloud/services/surveys.py)
        t.text("满意度调查 / Survey, points for answering:").text(survey_url).qr(survey_url)
    return t.cut()


def pick_ticket(order: OrderToFulfil, products: dict[str, Product | None]) -> bytes:
    """`products`: what the catalogue knows of the order's SKUs (grams are shown as grams)."""
    t = Ticket().text("PICK TICKET", bold=True, size=2, align="center").text(f"Order {order.order_id}")
    t.text(f"{order.fulfilment} slot {chain_time_of_day(order.slot_start_ms)}")
    for line in order.lines:
        product = products.get(line.sku)
        t.columns(line.sku, f"{line.qty} g" if product is not None and product.weighed else str(line.qty))
    if order.pickup_code:
        t.qr(f"PICKUP:{order.pickup_code}")
    return t.cut()
