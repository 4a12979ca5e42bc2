"""The printed receipt of a till sale (issue 19.2): what it says, and its ESC/POS bytes. Pure: the facts are
gathered by `edge.core.selling.pay` from the sale it commits, kept as plain JSON (`facts_json`) so the till page can
print the very same receipt again ("reprint"), and rendered to bytes by `receipt_bytes`.

The receipt names the store, lane, cashier (when one is signed in), every line with its weight or pieces, the
savings, the total, each tender (method and amount), the cash tendered and the change, the receipt number (the
sale id) and the receipt's QR (`SALE:<id>`, printed with ESC/POS `GS ( k`: `edge.devices.escpos.Ticket.qr`). A
reprint says so on its second line, so a reprinted slip is never taken for a second sale.
"""
from __future__ import annotations

from collections.abc import Sequence

from edge.devices.escpos import Ticket
from protocol.messages import Payment
from protocol.money import format_fen
from protocol.pricing import PricedBasket

NAME_COLUMN_CHARS = 18
METHOD_WORDS = {"cash": "cash", "stored_value": "stored value", "wallet_sim": "wallet (simulated)", "points": "points"}


def weight_text(grams: int) -> str:
    whole, rest = divmod(grams, 1000)
    return f"{whole}.{rest:03d} kg"


def receipt_facts(store_id: str, lane: str, cashier_id: str, sale_id: str, priced: PricedBasket,
                  payments: Sequence[Payment], tendered_fen: int, change_fen: int, member_phone_masked: str | None,
                  survey_url: str, offline: bool, show_jin: bool = False) -> dict:
    """Everything the receipt prints, as JSON (kept by the page for a reprint)."""
    return {
        "store_id": store_id, "lane": lane, "cashier_id": cashier_id, "sale_id": sale_id,
        "member": member_phone_masked or "", "survey_url": survey_url, "offline": offline,
        "lines": [{"name": pl.name, "qty": pl.qty, "weight_g": pl.weight_g, "unit_price_fen": pl.unit_price_fen,
                   "amount_fen": pl.amount_fen} for pl in priced.lines],
        "rules": [{"name": r.name, "saving_fen": r.saving_fen} for r in priced.applied],
        "savings_fen": priced.discount_fen, "total_fen": priced.total_fen,
        "tenders": [{"method": p.method, "amount_fen": p.amount_fen} for p in payments],
        "tendered_fen": tendered_fen, "change_fen": change_fen, "show_jin": show_jin,
    }


def jin_text(grams: int, fen_per_kg: int) -> str:
    """A weighed line in jin (1 jin = 500 g) and its price per jin (half the kg price, halves rounded up)."""
    whole, rest = divmod(grams * 2, 1000)
    return f"{whole}.{rest:03d} 斤 x {format_fen((fen_per_kg + 1) // 2)}/斤"


def receipt_bytes(facts: dict, reprint: bool = False) -> bytes:
    """The receipt as ESC/POS bytes (GB18030 text, the QR as `GS ( k` functions 165/167/169/180/181)."""
    t = Ticket().text(f"FreshMesh {facts['store_id']}", bold=True, size=2, align="center")
    if reprint:
        t.text("*** 重印 REPRINT ***", bold=True, align="center")
    t.text(f"Receipt {facts['sale_id']}")
    t.text(f"Lane {facts['lane']}" + (f"  Cashier {facts['cashier_id']}" if facts["cashier_id"] else ""))
    if facts["member"]:
        t.text(f"Member {facts['member']}")
    for line in facts["lines"]:
        t.columns(line["name"][:NAME_COLUMN_CHARS], format_fen(line["amount_fen"]))
        if line["weight_g"]:
            t.text(f"  {weight_text(line['weight_g'])} x {format_fen(line['unit_price_fen'])}/kg")
            if facts.get("show_jin"):  # the store's customers read jin (old facts kept for a reprint have no flag)
                t.text(f"  {jin_text(line['weight_g'], line['unit_price_fen'])}")
        elif line["qty"] > 1:
            t.text(f"  {line['qty']} x {format_fen(line['unit_price_fen'])}")
    for rule in facts["rules"]:
        t.columns(rule["name"][:NAME_COLUMN_CHARS], "-" + format_fen(rule["saving_fen"]))
    if facts["savings_fen"]:
        t.columns("SAVINGS", format_fen(facts["savings_fen"]))
    t.columns("TOTAL", format_fen(facts["total_fen"]))
    for tender in facts["tenders"]:
        t.columns(f"Paid by {METHOD_WORDS.get(tender['method'], tender['method'])}", format_fen(tender["amount_fen"]))
    if any(tender["method"] == "cash" for tender in facts["tenders"]):
        t.columns("Tendered", format_fen(facts["tendered_fen"])).columns("Change", format_fen(facts["change_fen"]))
    if facts["offline"]:
        t.text("(completed offline)")
    t.qr(f"SALE:{facts['sale_id']}")
    if facts["survey_url"]:  # answered once, for points (cloud/services/surveys.py)
        t.text("满意度调查 / Survey, points for answering:").text(facts["survey_url"]).qr(facts["survey_url"])
    return t.cut()
