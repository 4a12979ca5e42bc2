"""The till page's counter work (issue 19, second increment): the cashier's shift, pickups, returns against a receipt
and the store's staff lists, mounted with the page's other routes (`edge/till/routes.py`).

Guarantees:
- Everything goes through what the lane API already does, in the same store actor: the PIN check and its lockout
  (`edge.cashier_pins`), sign-in opening the shift, the pickup hand-over, the return and its refund by the original
  method. These routes only add what the page needs around them: the opening float, the cash-up and the close with
  its report (`edge.shift_ops`, committed through the outbox exactly once), looking an order or a receipt up before
  acting on it, and HTML the box renders. Errors are the lane API's application/problem+json, worded for the cashier.
- A box provisioned with cashiers locks its till page until a cashier signs in (a box without any has nobody who
  could sign in: its page stays open, as before shifts).
- Codes are accepted as scanners and customers bring them: a bare pickup code, the pickup ticket's `PICKUP:<code>`,
  or a link with the code in it; a receipt's `SALE:<id>` QR or its bare number.
- A return form carries a return id made by the box, so a retried submit returns nothing twice.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from edge import receiving_db, returns_db
from edge.cashier_pins import FAILURES_MAX, LOCK_MS, SignInBody
from edge.core.outcome import Refused
from edge.core.returns import parse_code
from edge.returns_api import ReturnBody, ReturnLineBody
from edge.till import i18n
from protocol.messages import check_lane
from protocol.money import format_fen
from protocol.schema import record, require
from protocol.shift_messages import AMOUNT_MAX_FEN, FLOAT_MAX_FEN, DenominationCount

PICKUP_CODE_RE = re.compile(r"^[A-Za-z0-9-]{4,40}$")
DISPOSITIONS = ("resaleable", "spoiled", "expired", "damaged", "other")
STORE_LISTS = ("picking", "stocktakes", "receivings", "shrinkage", "transfers")
STORE_ROWS_MAX = 200  # a screenful or two; the full lists are the JSON API's
STORE_FIELDS_MAX = 7


@record
class FloatBody:
    amount_fen: int = 0  # one amount, or
    counted: tuple[DenominationCount, ...] = ()  # the float counted by denomination

    def __post_init__(self) -> None:
        require(0 <= self.amount_fen <= FLOAT_MAX_FEN, f"amount_fen: the float is 0 to {format_fen(FLOAT_MAX_FEN)} yuan")
        require(not (self.amount_fen and self.counted), "give amount_fen or counted, not both")


@record
class Confirmed:
    method: str
    counted_fen: int

    def __post_init__(self) -> None:
        require(0 <= self.counted_fen <= AMOUNT_MAX_FEN, f"confirmed {self.method[:24]}: 0..{AMOUNT_MAX_FEN} fen")


@record
class CashUpBody:
    counted: tuple[DenominationCount, ...] = ()
    confirmed: tuple[Confirmed, ...] = ()
    close: bool = False

    def __post_init__(self) -> None:
        require(len({c.denomination_fen for c in self.counted}) == len(self.counted), "counted: a denomination twice")


@record
class CodeBody:
    code: str

    def __post_init__(self) -> None:
        require(0 < len(self.code) <= 400, "code: 1-400 characters")


@record
class TillReturnBody:
    receipt: str
    return_id: str
    lines: tuple[ReturnLineBody, ...]

    def __post_init__(self) -> None:
        require(0 < len(self.receipt) <= 80, "receipt: 1-80 characters")
        require(0 < len(self.lines) <= 100, "lines: pick at least one line to return")


def pickup_code(scanned: str) -> str:
    """The pickup code in what was scanned or typed: the bare code, `PICKUP:<code>`, or a link carrying it (as a
    `code` / `pickup_code` parameter or its last path segment)."""
    text = scanned.strip()
    kind, ref = parse_code(text)
    if kind == "pickup":
        text = ref.strip()
    elif kind:
        raise Refused(422, f"{text[:40]} is a {kind} code, not a pickup code")
    elif "://" in text or text.startswith("/"):
        url = urlsplit(text)
        params = parse_qs(url.query)
        found = (params.get("pickup_code") or params.get("code") or [url.path.rstrip("/").rsplit("/", 1)[-1]])[0]
        text = found.removeprefix("PICKUP:")
    if not PICKUP_CODE_RE.match(text):
        raise Refused(422, f"{scanned.strip()[:40]!r} is not a pickup code (8 digits, PICKUP:<code> or its link)")
    return text


def require_cashier(box, lane: str) -> None:
    """A box provisioned with cashiers takes money at its till page only with a cashier signed in at the lane (the
    page is locked until then; this is the box saying so to anything that calls the page's endpoints directly)."""
    if box.cashier_pins.hashes and lane not in box.actor.on_duty:
        raise Refused(403, f"no cashier is signed in at lane {lane}: sign in at the till first")


def masked(text: str | None) -> str:
    if not text:
        return ""
    return text if "*" in text else (text[:2] + "****" + text[-2:] if len(text) > 6 else "****")


def flat(item: dict) -> list[tuple[str, str]]:
    """An item of a store list as (field, text): its plain values, and how many of each list it holds."""
    out = []
    for key, value in item.items():
        if isinstance(value, (list, tuple)):
            out.append((key, str(len(value))))
        elif not isinstance(value, dict) and value is not None:
            out.append((key, str(value)[:60]))
    return out[:STORE_FIELDS_MAX]


def routes(box, endpoint) -> list:
    """`endpoint`: the lane app's wrapper (body checks, problem+json errors: edge/lanes.py)."""
    from edge.till.routes import TEMPLATES, lang_of, render  # the page's own helpers (no cycle at import)
    TEMPLATES.env.globals["pin_lockout"] = (FAILURES_MAX, LOCK_MS // 60_000)  # the sign-in screen says the rule
    actor = box.actor
    show_jin = bool(box.config.get("show_jin"))

    def locks() -> bool:
        return bool(box.cashier_pins.hashes)

    def name_of(sku: str) -> str:
        product = actor.catalogue.by_sku.get(sku) if actor.catalogue else None
        return product.name if product else sku

    async def state(request, body):
        lane = request.path_params["lane"]
        duty = await actor.ask("shift", action="state", lane=lane)
        return {"lane": lane, "locks": locks(), "signed_in": duty, "show_jin": show_jin}

    async def sign_in(request, body: SignInBody):
        lane = request.path_params["lane"]
        if (duty := actor.on_duty.get(lane)) is not None:  # signing in over them would end their shift unreported
            raise Refused(409, f"cashier {duty.cashier_id} is signed in at lane {lane}: close their shift first")
        pin_ok = await box.cashier_pins.verify(body.cashier_id, body.pin, box.clock.monotonic_ms())
        try:
            await actor.ask("sign_in", lane=lane, cashier_id=body.cashier_id, pin_ok=pin_ok)
        except Refused as exc:  # the same answer locked or not (a guesser learns nothing); the rule is said
            w = i18n.words(lang_of(request))
            raise Refused(exc.status, f"{exc} ({w['lockout_note'].format(n=FAILURES_MAX, m=LOCK_MS // 60_000)})") \
                from None
        return await state(request, body)

    async def open_float(request, body: FloatBody):
        counted = {c.denomination_fen: c.pieces for c in body.counted}
        return await actor.ask("shift", action="float", lane=request.path_params["lane"], amount_fen=body.amount_fen,
                               counted=counted)

    async def cash_up(request, body: CashUpBody):
        lane = request.path_params["lane"]
        up = await actor.ask("shift", action="cash_up", lane=lane, close=body.close,
                             counted={c.denomination_fen: c.pieces for c in body.counted},
                             confirmed={c.method: c.counted_fen for c in body.confirmed})
        return {**up, "html": render("_cash_up.html", lang_of(request), up=up)}

    async def order_view(request, code: str) -> dict:
        found = await box.store_db.pending_order(code)
        if found is None:
            raise Refused(404, f"no order with pickup code {code} at store {box.store_id}: the code is unknown, or the "
                               "order is another store's")
        status, payload = await box.store_db.order(found.order_id)
        member_id = payload.get("member_id")
        member = await box.store_db.member(member_id=member_id) if member_id else None
        who = masked(member.phone_masked if member and member.phone_masked else member_id)
        lines = [{**line, "name": name_of(line["sku"])} for line in payload["lines"]]
        return {"order_id": found.order_id, "status": status, "total_fen": payload.get("total_fen", 0),
                "lines": lines, "customer": who}

    async def pickup_look(request, body):
        code = pickup_code(request.query_params.get("code", ""))
        order = await order_view(request, code)
        return {**order, "code": code,
                "html": render("_pickup.html", lang_of(request), order=order, show_jin=show_jin)}

    async def hand_over(request, body: CodeBody):
        require_cashier(box, request.path_params["lane"])
        code = pickup_code(body.code)
        order = await order_view(request, code)
        if order["status"] == "picked_up":
            raise Refused(409, f"order {order['order_id']} (code {code}) was handed over already")
        done = await actor.ask("pickup", pickup_code=code, lane=request.path_params["lane"])
        order["status"] = done["status"]
        return {**order, "html": render("_pickup.html", lang_of(request), order=order, show_jin=show_jin)}

    async def receipt_look(request, body):
        raw = request.query_params.get("code", "").strip()
        kind, ref = parse_code(raw)
        if kind not in ("", "sale") or not ref:
            raise Refused(422, f"{raw[:40]!r} is not a receipt (SALE:<id> or the receipt number)")
        sale = await box.store_db.sale(ref)
        if sale is None:
            raise Refused(404, f"no sale {ref} at store {box.store_id}")
        back = await returns_db.earlier(box.store_db.reader, f"sale:{ref}")
        sold: dict[str, dict] = {}
        for sku, amount, unit, fen in sale["lines"]:
            line = sold.setdefault(sku, {"sku": sku, "name": name_of(sku), "unit": unit, "sold": 0, "fen": 0})
            line["sold"] += amount
            line["fen"] += fen
        lines = []
        for line in sold.values():
            returned = back[line["sku"]].qty if line["sku"] in back else 0
            lines.append({**line, "returned": returned, "left": max(line["sold"] - returned, 0)})
        html = render("_return.html", lang_of(request), sale=sale, lines=lines, return_id=actor.ids.new(),
                      dispositions=DISPOSITIONS, show_jin=show_jin)
        return {"sale_id": ref, "lines": lines, "html": html}

    async def take_return(request, body: TillReturnBody):
        require_cashier(box, request.path_params["lane"])
        kind, ref = parse_code(body.receipt)
        if kind not in ("", "sale"):
            raise Refused(422, "returns at this screen are against a till receipt (SALE:<id>)")
        lane_body = ReturnBody(lines=body.lines, sale_id=ref, return_id=body.return_id)  # the lane API's checks
        done = await actor.ask("return_goods", lane=request.path_params["lane"], kind="sale", ref=ref,
                               asked=lane_body.asked(), return_id=body.return_id)
        names = {line["sku"]: name_of(line["sku"]) for line in done["lines"]}
        return {**done, "html": render("_refund.html", lang_of(request), done=done, names=names)}

    async def store_page(request: Request):
        lane = request.path_params["lane"]
        check_lane(lane)
        lang = lang_of(request)
        return HTMLResponse(render("store.html", lang, lane=lane, store_id=box.store_id, lists=STORE_LISTS,
                                   what=None, rows=[]))

    async def store_list(request: Request):
        lane, what = request.path_params["lane"], request.path_params["what"]
        check_lane(lane)
        if what not in STORE_LISTS:
            return HTMLResponse(f"no list {what[:40]}", status_code=404)
        rows = await store_rows(what)
        return HTMLResponse(render("store.html", lang_of(request), lane=lane, store_id=box.store_id,
                                   lists=STORE_LISTS, what=what, rows=rows))

    async def store_rows(what: str) -> list[list[tuple[str, str]]]:
        """The list as the box's own JSON API answers it, each item's plain fields shown (read-only)."""
        if what == "picking":
            items = (await actor.ask("pick_list"))["orders"]
        elif what == "stocktakes":
            items = (await actor.ask("stocktake", action="listed", status=None))["stocktakes"]
        elif what == "transfers":
            items = (await actor.ask("transfer", step="list", status=None))["transfers"]
        elif what == "shrinkage":
            items = await receiving_db.shrinkage_since(box.store_db.reader, 0)
        else:
            items = await receiving_db.since(box.store_db.reader, 0)
        return [flat(item) for item in items[-STORE_ROWS_MAX:]]

    return [
        Route("/till/{lane}/shift", endpoint(state), methods=["GET"]),
        Route("/till/{lane}/shift/sign-in", endpoint(sign_in, SignInBody), methods=["POST"]),
        Route("/till/{lane}/shift/float", endpoint(open_float, FloatBody), methods=["POST"]),
        Route("/till/{lane}/shift/cash-up", endpoint(cash_up, CashUpBody), methods=["POST"]),
        Route("/till/{lane}/pickup", endpoint(pickup_look), methods=["GET"]),
        Route("/till/{lane}/pickup", endpoint(hand_over, CodeBody), methods=["POST"]),
        Route("/till/{lane}/receipt", endpoint(receipt_look), methods=["GET"]),
        Route("/till/{lane}/return", endpoint(take_return, TillReturnBody), methods=["POST"]),
        Route("/till/{lane}/store", store_page, methods=["GET"]),
        Route("/till/{lane}/store/{what}", store_list, methods=["GET"]),
    ]


async def note_void(box, lane: str, lines: int) -> None:
    """A cart voided at the till page: counted in the lane's shift report (in the actor, like every write)."""
    await box.actor.ask("shift", action="void", lane=lane, lines=lines)
