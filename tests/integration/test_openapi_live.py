"""/openapi.json against the live cloud: every success answer this module can reach with a real request (as an HQ
admin, a store manager, a member and anyone) validates against the schema the document gives it, and the document
the cloud serves is valid OpenAPI 3.1. One running cloud for every case.

Store S054 is this module's own: it speaks to the cloud as a box does (a till sale with a member and promotion uses,
a loss), so that the reports, the member profile and the export answer with rows, not only empty lists.

What a real request cannot reach from here is named in `NOT_REACHED` with why (most tell a store in the world,
S001-S005, which other modules own, or need an order handed over at a store); test_observability.py checks the
public and console answers against its own cloud (`ELSEWHERE`). A test fails when an operation is in none of them,
so a new answer is checked live or said not to be.
"""
from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jsonschema
import pytest
import pytest_asyncio
from openapi_spec_validator import validate

from protocol import phones
from protocol.markdowns import MarkdownGiven
from protocol.messages import Payment, Quantity, SaleCommitted, SaleLine, StockMoved
from protocol.points import survey_key, survey_token
from protocol.policy import SURVEY_POINTS, chain_day
from protocol.promotion_uses import RuleUse
from protocol.reports import REPORTS as HQ_REPORTS
from simulators.customer_auth import SignedIn
from tests.integration.harness import (
    StoreLink,
    eventually,
    new_mobile,
    operator_headers,
    running_cloud,
    top_up,
)

pytestmark = pytest.mark.integration
STORE = "S054"  # provisioned by the test stack, used by no other module
SKU, LOST_SKU, FLASH_SKU = "EGG-FREE-R-0164", "EGG-FREE-R-0165", "EGG-FREE-R-0166"  # no other module's
RUN = uuid.uuid4().hex[:8]
ELSEWHERE = {  # checked live by tests/integration/test_observability.py (its own cloud)
    ("/health", "get"), ("/products", "get"), ("/openapi.json", "get"), ("/console/snapshot", "get"),
    ("/operator/audit", "get"), ("/audit", "get"), ("/operator/coupon-rules", "get"), ("/promotion-budgets", "get"),
    ("/operator/sessions", "post")}
ELSEWHERE |= {  # the promotion book editor's: checked live against the schema by test_back_office_promotions.py
    ("/operator/rule-book/preview", "post"), ("/operator/rule-book/schedule", "get"),
    ("/operator/rule-book/drafts", "post"), ("/operator/rule-book/drafts", "get"),
    ("/operator/rule-book/drafts/{draft_id}", "get"), ("/operator/rule-book/drafts/{draft_id}/publish", "post")}
NOT_REACHED = {
    # they tell a store of the world (S001-S005, other modules' stores) or change the world every store is sent
    ("/products", "put"): "sends the catalogue to every store", ("/rule-book", "put"): "sends the book to every store",
    ("/stores/{store_id}", "put"): "changes the shared world", ("/members/{member_id}", "delete"): "tells every store",
    ("/stores/{store_id}/allocation", "put"): "tells the store", ("/stores/{store_id}/reorder-points", "put"): "tells "
    "the store", ("/operator/transfers", "post"): "tells the sending store",
    ("/operator/transfers/{transfer_id}/cancel", "post"): "needs a transfer (tells both stores)",
    ("/operator/transfers/{transfer_id}/decision", "post"): "needs a manager's transfer (schema checked live in "
    "test_back_office_stock.py)",
    # a store's services and bookings: their answers are checked live against this document in
    # test_back_office_services.py (its own store S076, whose service book that module defines)
    **{(path, method): "checked live in test_back_office_services.py" for path, method in (
        ("/stores/{store_id}/services", "get"), ("/stores/{store_id}/services/{service_id}/slots", "get"),
        ("/bookings", "post"), ("/members/{member_id}/bookings", "get"), ("/bookings/{booking_id}/cancel", "post"),
        ("/operator/stores/{store_id}/services", "get"), ("/operator/stores/{store_id}/schedule", "get"))},
    ("/operator/stores/{store_id}/services", "put"): "defines a store's service book (test_back_office_services.py "
    "does, for its own store)",
    **{(path, method): "checked live in test_back_office_stalls.py (its own stalls at S074)" for path, method in (
        ("/operator/stalls", "get"), ("/operator/stalls", "post"), ("/operator/stalls/{stall_id}", "get"),
        ("/operator/stalls/{stall_id}/products", "get"), ("/operator/stalls/{stall_id}/products/{sku}", "put"),
        ("/operator/stalls/{stall_id}/sales", "get"), ("/operator/stalls/{stall_id}/settlement", "get"))},
    **{(path, method): "checked live in test_back_office_prices.py (its own products BOP-*)" for path, method in (
        ("/products/{sku}/prices", "get"), ("/products/versions", "get"), ("/products/export", "get"),
        ("/products/import", "post"), ("/products/{sku}", "put"), ("/products/{sku}/store-prices/{store_id}", "put"),
        ("/products/{sku}/store-prices/{store_id}", "delete"), ("/products/{sku}/price-changes", "post"),
        ("/products/{sku}/price-changes/{change_id}", "delete"))},
    # an order placed at a store needs stock escrowed by a world store (other modules' stores); a sale-only
    # flash sale's order needs none and is reached below
    ("/orders", "post"): "needs escrow at a world store",
    ("/orders/{order_id}/after-sales", "post"): "needs an order handed over at a store",
    ("/operator/after-sales/{request_id}/approve", "post"): "needs an after-sales request",
    ("/operator/after-sales/{request_id}/refuse", "post"): "needs an after-sales request",
    ("/group-buys", "post"): "opens with an order", ("/group-buys/{group_id}/join", "post"): "joins with an order",
    ("/group-buys/{group_id}", "get"): "needs a group", ("/operator/group-buys/{group_id}", "get"): "needs a group",
    ("/operator/group-buys/{group_id}/cancel", "post"): "needs a group",
    # they touch other modules' members, or are a provider's own signed call
    ("/operator/campaigns", "post"): "issues coupons to a segment (members of other modules)",
    ("/callbacks/rider", "post"): "the rider platform's own shape, signed by it",
    ("/callbacks/marketplace/{marketplace}", "post"): "a marketplace's own signed webhook (checked live against this "
    "document in test_marketplace_orders.py)",
}


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"oal{RUN[:6]}-") as (services, url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield services, http


def check(doc: dict, path: str, method: str, answer: httpx.Response) -> None:
    """The answer is one the document lists for the operation, of its media type, and valid against its schema."""
    responses = doc["paths"][path][method]["responses"]
    assert str(answer.status_code) in responses and answer.status_code < 300, (path, method, answer.text[:500])
    [(media, content)] = responses[str(answer.status_code)]["content"].items()
    assert answer.headers["content-type"].replace(" ", "").startswith(media.replace(" ", "")), (path, method)
    assert content["schema"].get("x-shape-described") is not False, (path, method)
    if media == "application/json":
        jsonschema.validate(answer.json(), {**content["schema"], "components": doc["components"]})


async def store_history(stack, member_id: str) -> str:
    """S054 as its box: a till sale to the member with a promotion used, and a loss (spoiled). The sale's id."""
    sale_id = f"oal-{RUN}"
    async with StoreLink(stack, STORE) as link:
        env = link.next_envelope()
        env["wall_ms"] -= 60_000  # never in the cloud's future
        await link.publish(SaleCommitted(
            **env, sale_id=sale_id, lane="1", member_id=member_id, offline=False,
            lines=(SaleLine(sku=SKU, quantity=Quantity.pieces(2), amount_fen=1_800),), total_fen=1_800,
            payments=(Payment(method="cash", amount_fen=1_800, reference=""),),
            markdowns=(MarkdownGiven(rule_id="MD-USE-BY-DAY", line=0, sku=SKU, saving_fen=200),),
            promotions=(RuleUse(rule_id="R0010", saving_fen=200),)))
        await link.publish(StockMoved(**link.next_envelope(), sku=LOST_SKU, delta=-3, reason="shrinkage",
                                      shrinkage_reason="spoiled", on_hand_after=0, reference=""))
    return sale_id


async def sign_up(services, http) -> tuple[SignedIn, list[tuple[str, str, httpx.Response]]]:
    """A new member signs in with a code sent by the simulated SMS provider: the member and both answers."""
    phone = new_mobile()
    inbox = services.identity.sms.inbox
    e164 = phones.normalise(phone)
    asked = None
    for _ in range(3):  # the simulated provider fails a few sends on purpose (503): ask again
        asked = await http.post("/auth/codes", json={"phone": phone})
        if asked.status_code != 503:
            break
    assert asked is not None and asked.status_code == 202, asked.text if asked else None
    code = await inbox.code_after(http, e164, 0)
    signed = await http.post("/auth/sessions", json={"phone": phone, "code": code})
    assert signed.status_code == 201, signed.text
    member = SignedIn(signed.json()["member_id"], signed.json()["token"], e164)
    return member, [("/auth/codes", "post", asked), ("/auth/sessions", "post", signed)]


async def survey_and_points_story(stack, http, member: SignedIn, sale_id: str,
                                  offer_id: str) -> list[tuple[str, str, httpx.Response]]:
    """The receipt's survey of S054's sale (its token signed as S054's box signs it) answered: the member's points
    then buy the coupon offer; the wallet then holds it."""
    token = survey_token(survey_key(stack.store_credentials(STORE)[1], STORE), STORE, sale_id)
    page = await http.get(f"/surveys/{token}")
    answered = await http.post(f"/surveys/{token}", json={"satisfaction": 5, "freshness": 4, "comment": "fresh"})
    assert answered.status_code == 201 and answered.json()["points_granted"] == SURVEY_POINTS, answered.text
    bought = await http.post(f"/members/{member.member_id}/points/exchange", json={"offer_id": offer_id},
                             headers={**member.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert bought.status_code == 201, bought.text
    return [("/surveys/{token}", "get", page), ("/surveys/{token}", "post", answered),
            ("/members/{member_id}/points/exchange", "post", bought),
            ("/members/{member_id}/points/exchanges", "get",
             await http.get(f"/members/{member.member_id}/points/exchanges", headers=member.headers)),
            ("/members/{member_id}/coupons", "get", await http.get(f"/members/{member.member_id}/coupons",
                                                                   headers=member.headers))]


async def top_up_and_issue_story(services, http, hq: dict, member: SignedIn) -> list[tuple[str, str, httpx.Response]]:
    """A wallet top-up asked for (202), paid in the simulated wallet, read back and asked again (200, done); HQ
    issues a coupon of a second definition to the member and to an id that is no member (refused)."""
    key = {**member.headers, "Idempotency-Key": uuid.uuid4().hex}
    body = {"amount_fen": 2_000, "method": "wallet_sim"}
    asked = await http.post(f"/members/{member.member_id}/top-ups", json=body, headers=key)
    assert asked.status_code == 202, asked.text
    done = await top_up(services, http, member, 2_000, key=key["Idempotency-Key"])  # pays it, waits for credit
    again = await http.post(f"/members/{member.member_id}/top-ups", json=body, headers=key)
    assert again.status_code == 200 and again.json()["state"] == "done", again.text
    definition = {"definition_id": f"oal2-{RUN}", "rule_id": "R0025", "name": f"openapi 2 {RUN}", "valid_days": 7}
    assert (await http.post("/operator/coupon-definitions", json=definition, headers=hq)).status_code == 201
    issued = await http.post(f"/operator/coupon-definitions/oal2-{RUN}/issue", headers=hq, json={
        "batch_id": f"oal-{RUN}", "member_ids": [member.member_id, "no-such-member"], "why": "operator"})
    assert [i["member_id"] for i in issued.json()["issued"]] == [member.member_id], issued.text
    assert issued.json()["refused"] == [{"member_id": "no-such-member", "reason": "no such member"}]
    return [("/members/{member_id}/top-ups", "post", asked), ("/members/{member_id}/top-ups", "post", again),
            ("/members/{member_id}/top-ups/{top_up_id}", "get",
             await http.get(f"/members/{member.member_id}/top-ups/{done['top_up_id']}", headers=member.headers)),
            ("/operator/coupon-definitions/{definition_id}/issue", "post", issued)]


async def flash_order_story(http, hq: dict, member) -> list[tuple[str, str, httpx.Response]]:
    """A sale-only flash sale (no store's escrow: its orders go to no store), a member's flash order, its wallet
    payment asked for (202, not paid) and its cancellation."""
    now = datetime.now(UTC)
    sale = {"sku": FLASH_SKU, "quantity": 5, "price_fen": 990, "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), "per_member_limit": 2, "rate_per_s": 100}
    created = await http.post("/flash-sales", json=sale, headers=hq)
    assert created.status_code == 201, created.text
    sale_id = created.json()["sale_id"]
    flash_pass = await http.post("/auth/passes", headers=member.headers)
    bought = await http.post(f"/flash-sales/{sale_id}/orders", json={"qty": 1}, headers={
        "Authorization": f"Bearer {flash_pass.json()['pass']}", "Idempotency-Key": uuid.uuid4().hex})
    assert bought.status_code == 201, bought.text
    order_id = bought.json()["order_id"]
    answers = [("/flash-sales", "post", created), ("/auth/passes", "post", flash_pass),
               ("/flash-sales/{sale_id}/orders", "post", bought),
               ("/flash-sales/{sale_id}", "get", await http.get(f"/flash-sales/{sale_id}"))]

    async def placed():
        r = await http.get(f"/orders/{order_id}", headers=member.headers)
        return r if r.status_code == 200 else None
    got = await eventually(placed, timeout_s=20)
    assert got, f"flash order {order_id} never readable"
    paying = await http.post(f"/orders/{order_id}/pay", headers=member.headers, json={"method": "wallet_sim"})
    assert paying.status_code == 202 and paying.json()["payment"]["pay"], paying.text
    waiting = await http.get(f"/orders/{order_id}", headers=member.headers)  # with the payment to pay
    assert waiting.json()["payment"]["state"] == "requested", waiting.text
    answers += [("/orders/{order_id}", "get", got), ("/orders/{order_id}/pay", "post", paying),
                ("/orders/{order_id}", "get", waiting),
                ("/orders/{order_id}/after-sales", "get", await http.get(f"/orders/{order_id}/after-sales",
                                                                         headers=member.headers)),
                ("/orders/{order_id}/cancel", "post", await http.post(f"/orders/{order_id}/cancel", json={},
                                                                      headers=member.headers))]
    return answers


async def mall_story(services, http, member) -> list[tuple[str, str, httpx.Response]]:
    """What the mall asks as the customer: a cart's price at a store, their orders and their data; and a second,
    new member asking for their own erasure (nothing held, nothing owed: granted)."""
    from cloud.mall.shelf import online
    packed = next(p for p in online(services.cloud.world.catalogue) if not p.weighed)
    cart = await http.post("/cart/price", headers=member.headers, json={
        "items": [{"sku": packed.sku, "qty": 2}], "fulfilment": "pickup", "store_id": "S002"})
    assert cart.status_code == 200, cart.text
    leaving, _ = await sign_up(services, http)
    erased = await http.post(f"/members/{leaving.member_id}/erasure", json={"confirm": "erase"},
                             headers=leaving.headers)
    assert erased.status_code == 200, erased.text
    return [("/cart/price", "post", cart),
            ("/members/{member_id}/orders", "get", await http.get(f"/members/{member.member_id}/orders",
                                                                  headers=member.headers)),
            ("/members/{member_id}/personal-data", "get",
             await http.get(f"/members/{member.member_id}/personal-data", headers=member.headers)),
            ("/members/{member_id}/erasure", "post", erased)]


async def test_every_reachable_answer_validates_against_its_schema(world, stack):
    services, http = world
    doc = (await http.get("/openapi.json")).json()
    validate(doc)  # the served document, whole
    hq = await operator_headers(services)
    manager = await operator_headers(services, "store_manager", store_id="S002")
    member, signed_up = await sign_up(services, http)
    sale_id = await store_history(stack, member.member_id)

    async def recorded():
        return await services.cloud.db.fetchval("select 1 from till_sales where sale_id = $1", sale_id)
    assert await eventually(recorded, timeout_s=20), "S054's till sale was never applied"

    today = chain_day(time.time_ns() // 1_000_000)
    days = {"from": str(today - timedelta(days=2)), "to": str(today)}
    definition = {"definition_id": f"oal-{RUN}", "rule_id": "R0025", "name": f"openapi {RUN}", "valid_days": 30,
                  "channels": ["online"], "points_price": SURVEY_POINTS}  # the survey's points buy it
    made = await http.post("/operator/coupon-definitions", json=definition, headers=hq)
    reached: list[tuple[str, str, httpx.Response]] = [*signed_up,
        ("/operator/coupons/conflicts", "get", await http.get("/operator/coupons/conflicts", headers=hq)),
        ("/operator/coupon-definitions", "post", made),
        ("/operator/coupon-definitions", "post", await http.post("/operator/coupon-definitions", json=definition,
                                                                headers=hq)),  # the same again: 200
        ("/operator/coupon-definitions", "get", await http.get("/operator/coupon-definitions", headers=hq)),
        ("/rule-book", "get", await http.get("/rule-book", headers=hq)),
        ("/promotion-budgets/limit-conflicts", "get", await http.get("/promotion-budgets/limit-conflicts",
                                                                     headers=hq)),
        ("/stores/{store_id}/allocation", "get", await http.get("/stores/S002/allocation", headers=manager)),
        # a share of 0 (a world store's: other modules' clouds send it to their StockPools at start, where a share
        # of 0 with nothing reserved is no share at all), then the store's shares as its manager sees them
        ("/stores/{store_id}/marketplaces/{marketplace}/share", "put", await http.put(
            "/stores/S002/marketplaces/oal/share", json={"sku": SKU, "ratio_bp": 0}, headers=hq)),
        ("/stores/{store_id}/marketplaces", "get", await http.get("/stores/S002/marketplaces", headers=manager)),
        ("/stores/{store_id}/reorder-points", "get", await http.get("/stores/S002/reorder-points", headers=hq)),
        ("/operator/restock", "get", await http.get("/operator/restock", headers=hq)),
        ("/transfers", "get", await http.get("/transfers", headers=hq)),
        ("/operator/orders/summary", "get", await http.get("/operator/orders/summary", headers=hq)),
        ("/operator/reports/markdowns", "get", await http.get("/operator/reports/markdowns", headers=hq)),
        ("/operator/reports/losses", "get", await http.get("/operator/reports/losses",
                                                            params={**days, "group_by": "store"}, headers=hq)),
        ("/operator/reports/losses", "get", await http.get("/operator/reports/losses",
                                                            params={**days, "group_by": "day"}, headers=hq)),
        ("/operator/reports/promotions", "get", await http.get("/operator/reports/promotions", params=days,
                                                                headers=hq)),
        *[(f"/operator/reports/{name}", "get", await http.get(f"/operator/reports/{name}", params=days, headers=hq))
          for name in HQ_REPORTS],  # HQ's chain reports (cloud/http/routes/hq_reports.py), S054's sale in them
        ("/operator/group-buys", "get", await http.get("/operator/group-buys", headers=hq)),
        ("/operator/segments/recompute", "post", await http.post("/operator/segments/recompute", headers=hq)),
        ("/operator/segments", "get", await http.get("/operator/segments", headers=hq)),
        ("/operator/segments", "get", await http.get("/operator/segments", params={"segment": "new"}, headers=hq)),
        ("/operator/campaigns", "get", await http.get("/operator/campaigns", headers=hq)),
        ("/operator/members/{member_id}/profile", "get",
         await http.get(f"/operator/members/{member.member_id}/profile", headers=hq)),
        ("/members/{member_id}/export", "get", await http.get(f"/members/{member.member_id}/export", headers=hq)),
        ("/operator/coupons/returns", "get", await http.get("/operator/coupons/returns", headers=hq)),
        ("/operator/stocktakes", "get", await http.get("/operator/stocktakes", headers=hq)),
        ("/operator/shifts", "get", await http.get("/operator/shifts", headers=hq)),
        ("/operators", "post", await http.post("/operators", headers=hq, json={
            "username": f"oal-viewer-{RUN}", "password": "a-long-enough-password", "role": "viewer"})),
        ("/points/offers", "get", await http.get("/points/offers")),
        ("/points/offers", "get", await http.get("/points/offers", headers=member.headers)),
        ("/members/{member_id}/points/exchanges", "get",
         await http.get(f"/members/{member.member_id}/points/exchanges", headers=member.headers)),
        ("/members/{member_id}", "get", await http.get(f"/members/{member.member_id}", headers=member.headers)),
        ("/members/{member_id}/coupons", "get", await http.get(f"/members/{member.member_id}/coupons",
                                                               headers=member.headers)),
        ("/me", "get", await http.get("/me", headers=member.headers)),
        ("/stores", "get", await http.get("/stores")),
        ("/stores/{store_id}/stock", "get", await http.get("/stores/S002/stock")),
        ("/operator/me", "get", await http.get("/operator/me", headers=manager)),
        ("/operators", "get", await http.get("/operators", headers=hq)),
    ]
    reached += await mall_story(services, http, member)
    reached += await flash_order_story(http, hq, member)
    reached += await survey_and_points_story(stack, http, member, sale_id, f"oal-{RUN}")
    reached += await top_up_and_issue_story(services, http, hq, member)
    for path, method, answer in reached:
        check(doc, path, method, answer)

    # the answers carry what was made here: the schemas were checked against rows, not only empty lists
    by = {(p, m): a.json() for p, m, a in reached if a.headers["content-type"].startswith("application/json")}
    assert made.status_code == 201 and by[("/operator/coupon-definitions", "post")]["definition_id"] == f"oal-{RUN}"
    losses = (await http.get("/operator/reports/losses", params={**days, "group_by": "store"}, headers=hq)).json()
    assert any(r["key"] == STORE and r["pieces"] == 3 for r in losses["rows"]), losses
    export = by[("/members/{member_id}/export", "get")]
    assert [s["sale_id"] for s in export["till_sales"]] == [sale_id]
    assert by[("/operator/members/{member_id}/profile", "get")]["visits"] >= 1
    assert f"oal-{RUN}" in {o["offer_id"] for o in by[("/points/offers", "get")]["offers"]}
    wallet = [a.json() for p, m, a in reached if p == "/members/{member_id}/coupons"][-1]["coupons"]
    assert [c["definition_id"] for c in wallet] == [f"oal-{RUN}"], wallet
    promotions = (await http.get("/operator/reports/promotions", params={**days, "store": STORE},
                                 headers=hq)).json()
    assert any(r["rule_id"] == "R0010" for r in promotions["rows"]), promotions
    markdowns = by[("/operator/reports/markdowns", "get")]
    assert any(r["store_id"] == STORE and r["rule_id"] == "MD-USE-BY-DAY" for r in markdowns["rows"]), markdowns

    # every operation with a JSON answer is checked live here or in test_observability.py, or said why not
    here = {(p, m) for p, m, _ in reached}
    json_ops = {(p, m) for p, ops in doc["paths"].items() for m, op in ops.items()
                if any("application/json" in a.get("content", {}) for s, a in op["responses"].items()
                       if s.startswith("2"))}
    unaccounted = json_ops - here - ELSEWHERE - {k for k, why in NOT_REACHED.items() if why}
    assert not unaccounted, f"checked live nowhere and not said why: {sorted(unaccounted)}"


async def test_a_live_answer_that_breaks_its_schema_is_caught(world):
    """The check itself: an answer missing a required field, or with a field of the wrong type, fails it."""
    services, http = world
    doc = (await http.get("/openapi.json")).json()
    hq = await operator_headers(services)
    real = await http.get("/operator/reports/markdowns", headers=hq)
    check(doc, "/operator/reports/markdowns", "get", real)
    for broken in ({k: v for k, v in real.json().items() if k != "total_fen"}, {**real.json(), "rows": "none"}):
        forged = httpx.Response(200, json=broken)
        with pytest.raises(jsonschema.ValidationError):
            check(doc, "/operator/reports/markdowns", "get", forged)
