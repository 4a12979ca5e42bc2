"""Returns and after-sales on the lane API (local to the store box): `POST /lanes/{lane}/returns` takes a return
at the till; `GET /after-sales` lists the customers' requests the cloud sent (`?status=requested`), and
`POST /after-sales/{id}/approve|refuse` {"reason", "staff", "disposition"} decides one (a refusal says why; an
approval of a request with the goods returned takes them back here, on hand or to shrinkage).

Body: one of `receipt` (the receipt's QR text `SALE:<id>`, or a pickup ticket's `PICKUP:<code>`), `sale_id`,
`order_id`, `pickup_code`; `lines`: [{"sku", "qty" (pieces) | "weight_g" (weighed goods), "disposition":
"resaleable" | "spoiled" | "expired" | "damaged" | "other"}]; optionally `return_id` (an id the terminal made, so
a retry after a lost answer returns nothing twice); `keep_gifts` (default false): a gift the return leaves the basket
no longer earning stays with the customer and its regular price is taken off the refund (`edge.core.return_gifts`;
without it such a return is 409 asking for the gift back). 201 with the return (`coupons`: what became of the coupons
the sale redeemed; `deductions`: gifts kept); 404 no such sale or order here; 409 a
line returned past what was sold (the detail names it), an order not picked up here; 422 a malformed body.
"""
from __future__ import annotations

from starlette.routing import Route

from edge import returns_db
from edge.core.returns import Asked, parse_code
from protocol.ids import is_id
from protocol.messages import SKU_RE
from protocol.return_messages import REASON_MAX_CHARS, RETURN_LINES_MAX
from protocol.schema import record, require

QTY_MAX = 10_000_000


@record
class ReturnLineBody:
    sku: str
    qty: int | None = None
    weight_g: int | None = None
    disposition: str = "resaleable"

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"lines: invalid sku {self.sku[:40]!r}")
        require((self.qty is None) != (self.weight_g is None), f"lines {self.sku}: give exactly one of qty or weight_g")
        amount = self.qty if self.qty is not None else self.weight_g
        require(amount is not None and 0 < amount <= QTY_MAX, f"lines {self.sku}: qty or weight_g: 1..{QTY_MAX}")


@record
class ReturnBody:
    lines: tuple[ReturnLineBody, ...]
    receipt: str | None = None
    sale_id: str | None = None
    order_id: str | None = None
    pickup_code: str | None = None
    return_id: str | None = None
    keep_gifts: bool = False  # a gift the kept basket no longer earns stays with the customer, its price deducted

    def __post_init__(self) -> None:
        given = [x for x in (self.receipt, self.sale_id, self.order_id, self.pickup_code) if x is not None]
        require(len(given) == 1, "give exactly one of receipt, sale_id, order_id or pickup_code")
        require(all(0 < len(x) <= 80 for x in given), "receipt, sale_id, order_id or pickup_code: 1-80 characters")
        require(0 < len(self.lines) <= RETURN_LINES_MAX, f"lines: 1-{RETURN_LINES_MAX} lines")
        require(self.return_id is None or is_id(self.return_id), "return_id: not an id")

    def source(self) -> tuple[str, str]:
        if self.receipt is not None:
            kind, ref = parse_code(self.receipt)
            require(bool(kind), "receipt: not a receipt's QR (SALE:<id>) or a pickup code's (PICKUP:<code>)")
            return kind, ref
        if self.sale_id is not None:
            return "sale", self.sale_id
        if self.order_id is not None:
            return "order", self.order_id
        return "pickup", self.pickup_code or ""

    def asked(self) -> list[Asked]:
        return [Asked(line.sku, line.qty if line.qty is not None else (line.weight_g or 0),
                      "piece" if line.qty is not None else "g", line.disposition) for line in self.lines]


@record
class DecisionBody:
    reason: str = ""
    staff: str = ""
    disposition: str = "resaleable"  # where goods brought back go (a request with the goods returned)

    def __post_init__(self) -> None:
        require(len(self.reason) <= REASON_MAX_CHARS, f"reason: at most {REASON_MAX_CHARS} characters")
        require(len(self.staff) <= 32, "staff: at most 32 characters")


def routes(box, endpoint) -> list[Route]:
    """The returns routes, wrapped by the lane API's `endpoint` (body limits, problems)."""
    async def take_return(request, body: ReturnBody):
        kind, ref = body.source()
        return await box.actor.ask("return_goods", lane=request.path_params["lane"], kind=kind, ref=ref,
                                   asked=body.asked(), return_id=body.return_id, keep_gifts=body.keep_gifts)

    async def after_sales(request, body):
        status = request.query_params.get("status")
        return {"requests": await returns_db.after_sales(box.store_db.reader, status)}

    def decide(approved: bool):
        async def handle(request, body: DecisionBody):
            return await box.actor.ask("after_sales_decide", request_id=request.path_params["request_id"],
                                       approved=approved, reason=body.reason, staff=body.staff,
                                       disposition=body.disposition)
        return handle

    return [Route("/lanes/{lane}/returns", endpoint(take_return, ReturnBody), methods=["POST"]),
            Route("/after-sales", endpoint(after_sales), methods=["GET"]),
            Route("/after-sales/{request_id}/approve", endpoint(decide(True), DecisionBody), methods=["POST"]),
            Route("/after-sales/{request_id}/refuse", endpoint(decide(False), DecisionBody), methods=["POST"])]
