"""The till page's members and money (issue 19.2): the member panel, registering a member, applying a member's
coupon, the pay panel (cash with quick tenders and change, stored value, points, the simulated wallet, split
payments), and the receipt printed on the box's printer with a reprint. Mounted by `edge/till/routes.py`.

Guarantees:
- Every payment goes through the lane API's own shells (`edge/stored_value.py`, `edge/points_till.py`,
  `edge/split_pay.py`) and the one StoreActor, so the page sells exactly as the lane API does; a split sale is one
  sale with two tenders, all or nothing (`edge.core.split_tender`).
- A pay retried with the same `Idempotency-Key` (the page retries a wallet payment that did not answer in time
  with the key of its first try) answers the sale it made, never a second sale.
- What needs the cloud is refused offline with a sentence saying why and what to do instead, in the page's
  language: registering a member, the wallet, stored value past the offline allowance (take cash).
- A member's coupon is applied by its place in the member's wallet as the box knows it (`edge/coupons.py`): the page
  never holds a coupon's code (a bearer instrument; it shows the last four characters), the box finds it and
  applies it exactly as a scan of the code would.
- The receipt printed after a sale is kept (the last `RECEIPTS_KEPT`, this process's life) so the cashier can print
  it again; a reprint says REPRINT on the slip.
"""
from __future__ import annotations

import collections

from starlette.routing import Route

from edge import coupons, coupons_db, points_till, split_pay, stored_value, till_register
from edge.core.outcome import Refused
from edge.core.receipt_ticket import receipt_bytes
from edge.core.returns import DRAWER_KICK
from edge.core.split_tender import Tender
from edge.lanes import SplitBody
from edge.till import i18n
from edge.till.counter_routes import require_cashier
from edge.till.routes import TEMPLATES, cart_html, lang_of, per_kg_prices, render
from edge.till.view import qr_svg
from protocol import points
from protocol.lots import chain_day
from protocol.policy import REDEEM_POINTS_PER_YUAN
from protocol.schema import record, require
from protocol.till_member_messages import NAME_MAX

TEMPLATES.env.filters["chain_date"] = lambda ms: str(chain_day(ms))  # a coupon's last day, in the chain's zone
RECEIPTS_KEPT = 200  # a day of one lane's receipts is more; the last couple of hundred is what gets reprinted
PAID_KEYS_MAX = 1_000
IDEMPOTENCY_KEY_MAX = 64


@record
class RegisterBody:
    phone: str
    name: str = ""  # optional: sealed at the cloud, shown masked (张*)

    def __post_init__(self) -> None:
        require(0 < len(self.phone) <= 32, "phone: 1-32 characters")
        require(len(self.name.strip()) <= NAME_MAX and self.name.isprintable(),
                f"name: at most {NAME_MAX} printable characters")


@record
class ApplyBody:
    code_tail: str
    rule_id: str

    def __post_init__(self) -> None:
        require(0 < len(self.code_tail) <= 8 and 0 < len(self.rule_id) <= 64, "code_tail, rule_id: the coupon's")


@record
class TenderBody:
    method: str  # the whole sale, or the rest of a split
    tendered_fen: int = 0  # cash handed over
    points: int = 0
    first: SplitBody | None = None  # a split's first part

    def __post_init__(self) -> None:
        require(self.method in ("cash", "stored_value", "wallet_sim"), "method: one of cash, stored_value, wallet_sim")
        require(self.tendered_fen >= 0 and self.points >= 0, "tendered_fen, points: must not be negative")


def points_offer(member: dict | None, total_fen: int) -> dict:
    """What points may pay on this sale: the member's points, the most usable here (the share points may pay, in
    whole yuan's worth), and what those are worth."""
    have = int((member or {}).get("points") or 0)
    step = max(REDEEM_POINTS_PER_YUAN // 100, 1)
    most = min(have, points.points_cap(total_fen)) // step * step
    return {"have": have, "max": most, "max_value_fen": points.points_value_fen(most),
            "per_yuan": REDEEM_POINTS_PER_YUAN}


def routes(box) -> list:
    actor = box.actor
    receipts: collections.OrderedDict[str, dict] = collections.OrderedDict()  # sale id -> the receipt's facts
    paid: collections.OrderedDict[tuple[str, str], dict] = collections.OrderedDict()

    async def panel_html(lane: str, lang: str, name_masked: str = "") -> tuple[str, dict]:
        cart = await actor.ask("cart_view", lane=lane)
        member = cart.get("member")
        wallet = await coupons.wallet_view(box, member["member_id"], box.clock.now_ms()) if member else []
        in_cart = {c["rule_id"] for c in cart.get("coupons", [])}
        html = render("_member.html", lang, member=member, wallet=wallet, in_cart=in_cart,
                      online=bool(actor.online), name_masked=name_masked)
        return html, cart

    async def member_panel(request, body):
        lane, lang = request.path_params["lane"], lang_of(request)
        html, cart = await panel_html(lane, lang)
        return {"html": html, "member": bool(cart.get("member"))}

    async def register(request, body):
        lane, lang = request.path_params["lane"], lang_of(request)
        require_cashier(box, lane)  # it identifies the member at the lane: a cart edit, locked like the others
        try:
            done = await till_register.register(box, lane, body.phone, body.name)
        except till_register.NeedsCloud:
            raise Refused(503, i18n.words(lang)["needs_cloud_register"]) from None
        html, cart = await panel_html(lane, lang, done["member"].get("name", ""))
        return {"member": done["member"], "identified": done["cart"] is not None, "panel": html,
                "html": await cart_html(box, lane, cart, lang), "lines": len(cart["lines"]), "total_fen": cart["total_fen"]}

    async def apply_coupon(request, body):
        lane, lang = request.path_params["lane"], lang_of(request)
        require_cashier(box, lane)  # a cart edit: locked until a cashier signs in
        member = (await actor.ask("cart_view", lane=lane)).get("member")
        if not member:
            raise Refused(409, "a coupon is a member's: identify the member first")
        rows = await coupons_db.usable(box.store_db.reader, member["member_id"], box.clock.now_ms())
        code = next((c for c, rule, _ in rows if c[-4:] == body.code_tail and rule == body.rule_id), None)
        if code is None:
            raise Refused(404, f"the member has no usable coupon …{body.code_tail} of {body.rule_id} at this box")
        cart = await coupons.scan(box, lane, code)  # as a scan of the code does
        html, _ = await panel_html(lane, lang)
        return {"html": await cart_html(box, lane, cart, lang), "panel": html, "lines": len(cart["lines"]),
                "total_fen": cart["total_fen"]}

    async def pay_panel(request, body):
        lane, lang = request.path_params["lane"], lang_of(request)
        cart = await actor.ask("cart_view", lane=lane)
        offer = points_offer(cart.get("member"), cart["total_fen"])
        return {"html": render("_pay.html", lang, cart=cart, member=cart.get("member"), offer=offer,
                               online=bool(actor.online), pay_code=qr_svg(f"WALLETSIM:{box.store_id}:{lane}")),
                "total_fen": cart["total_fen"], "points": offer, "online": bool(actor.online)}

    async def pay(request, body):
        lane, lang = request.path_params["lane"], lang_of(request)
        require_cashier(box, lane)  # a locked till page takes no money (edge/till/counter_routes.py)
        key = request.headers.get("Idempotency-Key") or None
        if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
            raise Refused(422, f"Idempotency-Key: at most {IDEMPOTENCY_KEY_MAX} characters")
        if key is not None and (lane, key) in paid:  # a retry of a pay that was made: its answer again
            return paid[(lane, key)]
        reply = await tender(lane, lang, body)
        if key is not None:
            paid[(lane, key)] = reply
            while len(paid) > PAID_KEYS_MAX:
                paid.popitem(last=False)
        return reply

    async def tender(lane: str, lang: str, body: TenderBody) -> dict:
        w = i18n.words(lang)
        methods = {body.method} | ({body.first.method} if body.first else set())
        if "wallet_sim" in methods and not actor.online:
            raise Refused(503, w["wallet_offline"])
        before = await actor.ask("cart_view", lane=lane)  # what the receipt lists: the cart as paid
        try:
            if body.first is not None:
                reply = await split_pay.pay(box, lane, body.method, body.tendered_fen,
                                            Tender(body.first.method, body.first.amount_fen), body.points)
            elif body.points:
                reply = await points_till.pay(box, lane, body.method, body.tendered_fen, body.points)
            else:
                reply = await stored_value.pay(box, lane, body.method, body.tendered_fen)
        except Refused as exc:
            if "stored_value" in methods and not actor.online and "offline" in str(exc):
                raise Refused(exc.status, f"{w['sv_offline']} ({exc})") from None
            raise
        finally:
            await coupons.give_back(box)  # the sale's unused coupon holds, as the lane API does
        facts = reply.get("receipt") or {}
        if facts:
            receipts[reply["sale_id"]] = facts
            while len(receipts) > RECEIPTS_KEPT:
                receipts.popitem(last=False)
        if any(t["method"] == "cash" for t in reply.get("tenders", [])) and box.printer is not None:
            await box.printer.print(DRAWER_KICK)  # the drawer opens for the cash
        lines_known = before["total_fen"] == reply["total_fen"]  # a serial scan meanwhile: only the totals show
        link = reply.get("survey_url") or f"SALE:{reply['sale_id']}"
        html = render("_money_receipt.html", lang, cart=before if lines_known else {**before, "lines": []},
                      paid=reply, facts=facts, qr=qr_svg(link), survey=bool(reply.get("survey_url")),
                      show_jin=bool(box.config.get("show_jin")), per_kg=per_kg_prices(box, before))
        return {"html": html, **{k: v for k, v in reply.items() if k != "receipt"}}

    async def reprint(request, body):
        sale_id = request.path_params["sale_id"]
        facts = receipts.get(sale_id)
        if facts is None:
            raise Refused(404, f"receipt {sale_id} is not held on this box any more (the last {RECEIPTS_KEPT} "
                               "since it started are)")
        if box.printer is None:
            raise Refused(409, "no receipt printer on this box")
        await box.printer.print(receipt_bytes(facts, reprint=True))
        return {"sale_id": sale_id, "printed": True}

    return [("/till/{lane}/member-panel", member_panel, None, ["GET"]),
            ("/till/{lane}/members", register, RegisterBody, ["POST"]),
            ("/till/{lane}/coupons/apply", apply_coupon, ApplyBody, ["POST"]),
            ("/till/{lane}/pay-panel", pay_panel, None, ["GET"]),
            ("/till/{lane}/tender", pay, TenderBody, ["POST"]),
            ("/till/{lane}/receipts/{sale_id}/print", reprint, None, ["POST"])]


def mounted(box, endpoint) -> list[Route]:
    """The routes above, each through the lane app's `endpoint` wrapper (body checks, problem+json errors)."""
    return [Route(path, endpoint(fn, body_cls), methods=methods) for path, fn, body_cls, methods in routes(box)]
