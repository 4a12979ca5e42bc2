"""After-sales requests: the order's member asks (`POST /orders/{id}/after-sales`) and reads them; an operator of
the order's store (a store manager of it, or HQ) approves or refuses them (audited). The store's staff decide on
the store box too (its lane API; the decision comes back on the event path)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.http.parsing import as_record, idempotency_key, json_object, parse, read_body
from cloud.http.routes.auth import signed_in_member
from protocol.return_messages import REASON_MAX_CHARS, RETURN_LINES_MAX, AfterSalesLine
from protocol.schema import record, require


@record
class AfterSalesRequest:
    lines: tuple[AfterSalesLine, ...]
    reason: str
    with_return: bool = True

    def __post_init__(self) -> None:
        require(0 < len(self.lines) <= RETURN_LINES_MAX, f"lines: 1-{RETURN_LINES_MAX} lines")
        require(len(self.reason.strip()) > 0 and len(self.reason) <= REASON_MAX_CHARS,
                f"reason: 1-{REASON_MAX_CHARS} characters")


@record
class Decision:
    reason: str = ""

    def __post_init__(self) -> None:
        require(len(self.reason) <= REASON_MAX_CHARS, f"reason: at most {REASON_MAX_CHARS} characters")


def routes(services) -> list[tuple]:
    async def ask(request):
        member = await signed_in_member(request, services)
        req = await parse(request, AfterSalesRequest, "after_sales")
        body, made = await services.after_sales.request(request.path_params["order_id"], member, req.lines,
                                                        req.reason, req.with_return,
                                                        idempotency_key(request, required=False))
        return JSONResponse(body, status_code=201 if made else 200)

    async def mine(request):
        member = await signed_in_member(request, services)
        order_id = request.path_params["order_id"]
        return JSONResponse({"order_id": order_id, "requests": await services.after_sales.for_order(order_id, member)})

    def decide(approved: bool):
        async def handle(request):
            row = await services.after_sales.get(request.path_params["request_id"])
            operator = await require_operator(request, services, "after_sales.decide", store_id=row["store_id"])
            raw = await read_body(request)  # an empty body: an approval without words
            content_type = request.headers.get("content-type", "")
            reason = as_record(json_object(raw, content_type), Decision, "decision").reason if raw else ""
            before = {"status": row["status"]}
            body = await services.after_sales.decide(row["request_id"], approved, reason,
                                                     f"operator {operator.username}")
            await services.operators.record_now(operator, f"after_sales.{'approve' if approved else 'refuse'}",
                                                row["request_id"], before, {"status": body["status"],
                                                                            "reason": reason})
            return JSONResponse(body)
        return handle

    return [("/orders/{order_id}/after-sales", ask, ["POST"]), ("/orders/{order_id}/after-sales", mine, ["GET"]),
            ("/operator/after-sales/{request_id}/approve", decide(True), ["POST"]),
            ("/operator/after-sales/{request_id}/refuse", decide(False), ["POST"])]
