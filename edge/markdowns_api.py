"""Markdowns on the store box's lane API (local to the store; works with the cloud unreachable):

    POST /markdowns/labels   {"sku", "lot" (optional: "" or absent = no lot), "count" (1..50), "printed_by",
                              "weight_g" (weighed goods: the package's weight; none for pieces)}
                             -> 200 {"labels": count, "code", "sku", "lot", "use_by", "rule_id", "rule_name",
                                     "was_fen", "now_fen", "weight_g" | "qty"}
                             prints `count` labels (name, was/now, use-by, lot, the rule) with a price-embedded
                             EAN-13 carrying the marked-down price; scanned at a till (`POST /lanes/{lane}/scan`) it
                             sells at that price, as a markdown, not marked down again.
    GET  /markdowns/now      -> 200 {"items": [{"sku", "name", "lot", "use_by", "on_hand", "unit", "rule_id",
                                                "rule_name", "was_fen", "now_fen"}], "labels_printed"}
                             what is marked down right now, per SKU and lot in stock (prices per kg or per piece).

Refusals are problem+json naming what was wrong: 404 unknown product or lot, 409 no markdown applies now, an expired
lot, no printer or no price layout configured, 422 a malformed body, weight_g missing (weighed) or given (pieces),
a product without a PLU, a price the layout cannot carry. The decisions are `edge/core/markdowns.py`; the actor runs
them one at a time in its mailbox (`run`).
"""
from __future__ import annotations

from typing import Any

from starlette.routing import Route

from edge import markdowns_db
from edge.core import markdowns
from edge.core.outcome import Refused
from protocol.lots import check_lot
from protocol.messages import NAME_RE, SKU_RE
from protocol.schema import record, require


@record
class LabelBody:
    sku: str
    count: int
    printed_by: str
    lot: str = ""
    weight_g: int | None = None

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"sku: invalid sku {self.sku[:40]!r}")
        require(1 <= self.count <= markdowns.LABELS_MAX, f"count: 1..{markdowns.LABELS_MAX} labels")
        require(bool(NAME_RE.fullmatch(self.printed_by)), "printed_by: 1-32 letters, digits, '_' or '-'")
        check_lot(self.lot, "lot")


async def run(actor: Any, what: str, **kw: Any) -> dict:
    """A markdown operation inside the actor's mailbox (StoreActor._markdowns): one at a time with the sales."""
    now = actor.clock.now_ms()
    if what == "labels":
        body: LabelBody = kw["body"]
        found = await markdowns_db.lot_in_stock(actor.db.writer, body.sku, body.lot) if body.lot else None
        label = markdowns.plan_labels(actor.books, body.sku, found, body.lot, body.weight_g, body.count, actor.layouts,
                                      actor.store_id, now)
        if actor.printer is None:
            raise Refused(409, "no printer configured on this box: labels cannot be printed")
        # recorded before it prints: a printed label is always known to the tills
        await markdowns_db.record_labels(actor.db.writer, label, body.count, body.printed_by, now)
        await actor.printer.print(markdowns.label_ticket(label, actor.books.product(body.sku).name, body.count))
        return {"labels": body.count, **label.as_json()}
    assert what == "now", what
    stock = await markdowns_db.lots_in_stock(actor.db.writer)
    return {"items": markdowns.marked_down_now(actor.books, stock, actor.store_id, now),
            "labels_printed": await markdowns_db.labels_printed(actor.db.writer)}


def routes(box, endpoint) -> list[Route]:
    """`endpoint(fn, body_cls)`: the lane API's handler wrapper (bodies parsed, refusals mapped)."""
    actor = box.actor

    async def labels(request, body: LabelBody):
        return await actor.ask("markdowns", what="labels", body=body)

    async def now(request, body):
        return await actor.ask("markdowns", what="now")

    return [Route("/markdowns/labels", endpoint(labels, LabelBody), methods=["POST"]),
            Route("/markdowns/now", endpoint(now), methods=["GET"])]
