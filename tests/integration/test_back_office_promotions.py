"""The promotion book editor against a real cloud (issue 21, build 2): the preview API prices a basket with the book
in force or an edited draft and says what each rule did; drafts are saved as numbered revisions, validated as
PUT /rule-book validates (the refusal names the rule and field), idempotent and audited; publishing a revision makes
it the book in force (GET /rule-book), sent to the stores, once. In headless Chromium an HQ admin edits a rule's
amount, previews a basket and sees the new saving, publishes; a viewer's publish is refused in a sentence.

Isolation: the default world's stores (S001-S005) are every module's; so that publishing here leaves no rule book
waiting in their streams for a later module's box, this module's world admin sends what it publishes to S071 only
(this module's own store, whose stream the test reads back). The rule edited is R0012 (30% off DAI-BUTTER-0192 at
the till), whose SKU no other module uses. Screenshots go to the tests' tmp dirs."""
from __future__ import annotations

import asyncio
import functools
import json
import uuid

import httpx
import jsonschema
import pytest
import pytest_asyncio

from cloud.http.openapi import openapi_document
from protocol.messages import RuleBookUpdated
from tests.integration.harness import OPERATOR_PASSWORD, StoreLink, operator_headers, running_cloud
from tests.integration.office_browser import DESK, PHONE, office_context, office_sign_in, shot

pytestmark = pytest.mark.integration
RUN = uuid.uuid4().hex[:6]
STORE, SKU, RULE = "S071", "DAI-BUTTER-0192", "R0012"
NOON = "2026-12-01T12:00:00+08:00"
# DAI-BUTTER-0192 lists at 17.46. At the till R0027 (10% off, priority 4) comes first: 174.6 -> 1.75 off, 15.71
# left; then R0012 takes 30% of 15.71 = 471.3 -> 4.71 (the default book), or, edited to 40%, 628.4 -> 6.28 (total
# 9.43). The drafts test publishes 35% (549.85 -> 5.50) before the browser test edits it to 40%.
IN_FORCE_SAVING, EDITED_SAVING, EDITED_TOTAL = 471, 628, 943
BASKET = {"channel": "offline", "store_id": "S001", "at": NOON, "lines": [{"sku": SKU, "qty": 1}]}
DOC = openapi_document()


def valid(path: str, method: str, answer: httpx.Response) -> dict:
    """The answer is a success the document lists, valid against its schema; its body."""
    responses = DOC["paths"][path][method]["responses"]
    assert str(answer.status_code) in responses and answer.status_code < 300, (path, answer.text[:400])
    schema = responses[str(answer.status_code)]["content"]["application/json"]["schema"]
    jsonschema.validate(answer.json(), {**schema, "components": DOC["components"]})
    return answer.json()


def edited_book(book: dict, percent_bp: int) -> dict:
    rules = [dict(r, percent_off_bp=percent_bp) if r["id"] == RULE else r for r in book["rules"]]
    return {k: v for k, v in book.items() if k != "version"} | {"rules": rules}


def verdict(answer: dict, rule_id: str) -> dict:
    return next(v for v in answer["rules"] if v["rule_id"] == rule_id)


@pytest_asyncio.fixture(scope="module")
async def office(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"bop{RUN}-") as (services, url):
        await services.bridge.ensure_store(STORE)  # its cloud-message consumer (not a world store)
        admin = services.world_admin
        admin.broadcast = functools.partial(admin.broadcast, stores=[STORE])  # see the module's docstring
        names = {"hq": f"hq-promo-{RUN}", "viewer": f"viewer-promo-{RUN}"}
        heads = {role: await operator_headers(services, "hq_admin" if role == "hq" else "viewer", username=name)
                 for role, name in names.items()}
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield services, url, http, names, heads


async def test_the_preview_prices_the_book_in_force_and_a_draft_and_says_what_each_rule_did(office):
    services, _, http, _, heads = office
    assert (await http.post("/operator/rule-book/preview", json=BASKET)).status_code == 401
    now = valid("/operator/rule-book/preview", "post",
                await http.post("/operator/rule-book/preview", json=BASKET, headers=heads["viewer"]))
    assert not now["draft"] and verdict(now, RULE)["effect"] == "applied"
    assert verdict(now, RULE)["saving_fen"] == IN_FORCE_SAVING
    online = (await http.post("/operator/rule-book/preview", json={**BASKET, "channel": "online"},
                              headers=heads["viewer"])).json()
    assert verdict(online, RULE)["effect"] == "channel"  # R0012 is for the till only

    book = (await http.get("/rule-book", headers=heads["viewer"])).json()
    draft = {**BASKET, "rule_book": edited_book(book, 4000),
             "lines": [*BASKET["lines"], {"sku": "NO-SUCH-SKU", "qty": 1}]}
    answer = valid("/operator/rule-book/preview", "post",
                   await http.post("/operator/rule-book/preview", json=draft, headers=heads["viewer"]))
    assert answer["draft"] and answer["rule_book_version"] == book["version"] + 1
    assert (verdict(answer, RULE)["saving_fen"], answer["total_fen"]) == (EDITED_SAVING, EDITED_TOTAL)
    assert [r["sku"] for r in answer["refused_lines"]] == ["NO-SUCH-SKU"]  # refused alone; the butter is priced
    assert services.cloud.world.rule_book.version == book["version"]  # a preview changes nothing

    broken = {**BASKET, "rule_book": edited_book(book, 0)}  # neither percent nor amount off
    r = await http.post("/operator/rule-book/preview", json=broken, headers=heads["viewer"])
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert f"rule {RULE!r}" in r.json()["detail"] and "percent_off_bp" in r.json()["detail"]


async def test_drafts_are_validated_numbered_idempotent_and_audited(office):
    services, _, http, _, heads = office
    book = (await http.get("/rule-book", headers=heads["hq"])).json()
    draft_id = f"api-{RUN}"
    body = {"draft_id": draft_id, "revision": 1, "rule_book": edited_book(book, 3500), "note": "35%"}
    assert (await http.post("/operator/rule-book/drafts", json=body, headers=heads["viewer"])).status_code == 403
    bad = await http.post("/operator/rule-book/drafts", json={**body, "rule_book": edited_book(book, 20_000)},
                          headers=heads["hq"])
    assert bad.status_code == 422 and f"rule {RULE!r}" in bad.json()["detail"] and "percent_off_bp" in bad.json()["detail"]
    saved = valid("/operator/rule-book/drafts", "post",
                  await http.post("/operator/rule-book/drafts", json=body, headers=heads["hq"]))
    assert (saved["revision"], saved["based_on_version"], saved["saved_by"]) == (1, book["version"], f"hq-promo-{RUN}")
    again = await http.post("/operator/rule-book/drafts", json=body, headers=heads["hq"])
    assert again.status_code == 200 and again.json()["saved_at"] == saved["saved_at"]
    other = await http.post("/operator/rule-book/drafts", json={**body, "rule_book": edited_book(book, 3600)},
                            headers=heads["hq"])
    assert other.status_code == 409 and "revision 1" in other.json()["detail"]
    skipped = await http.post("/operator/rule-book/drafts", json={**body, "revision": 3}, headers=heads["hq"])
    assert skipped.status_code == 409 and "at revision 1" in skipped.json()["detail"]

    one = valid("/operator/rule-book/drafts/{draft_id}", "get",
                await http.get(f"/operator/rule-book/drafts/{draft_id}", headers=heads["viewer"]))
    assert [r["revision"] for r in one["revisions"]] == [1] and one["published"] is None
    listed = valid("/operator/rule-book/drafts", "get", await http.get("/operator/rule-book/drafts",
                                                                       headers=heads["viewer"]))
    assert draft_id in [d["draft_id"] for d in listed["drafts"]]
    assert (await http.get("/operator/rule-book/drafts/nope", headers=heads["viewer"])).status_code == 404
    rows = await services.cloud.db.fetch("select username, action, after from operator_audit where target = $1",
                                         f"rule_book_draft:{draft_id}:1")
    assert [(r["username"], r["action"]) for r in rows] == [(f"hq-promo-{RUN}", "rule_book.draft.save")]
    assert json.loads(rows[0]["after"])["rules"][RULE]["percent_off_bp"] == 3500  # what changed, per rule
    schedule = valid("/operator/rule-book/schedule", "get",
                     await http.get("/operator/rule-book/schedule", headers=heads["viewer"]))
    assert {r["rule_id"]: r["status"] for r in schedule["rules"]}[RULE] == "live"
    assert services.cloud.world.rule_book.version == book["version"]  # a draft is not in force

    publish = f"/operator/rule-book/drafts/{draft_id}/publish"
    assert (await http.post(publish, json={"revision": 1}, headers=heads["viewer"])).status_code == 403
    pub = valid("/operator/rule-book/drafts/{draft_id}/publish", "post",
                await http.post(publish, json={"revision": 1}, headers=heads["hq"]))
    assert (pub["rule_book_version"], pub["published_by"]) == (book["version"] + 1, f"hq-promo-{RUN}")
    now = (await http.get("/rule-book", headers=heads["viewer"])).json()
    assert now == {**edited_book(book, 3500), "version": book["version"] + 1}
    again = await http.post(publish, json={"revision": 1}, headers=heads["hq"])
    assert again.status_code == 200 and again.json() == pub  # published once
    r2 = await http.post("/operator/rule-book/drafts", json={**body, "revision": 2, "note": "later"},
                         headers=heads["hq"])
    assert r2.status_code == 201 and r2.json()["based_on_version"] == book["version"]
    stale = await http.post(publish, json={"revision": 2}, headers=heads["hq"])
    assert stale.status_code == 409 and "in force now" in stale.json()["detail"]  # made from the book before
    assert services.cloud.world.rule_book.version == book["version"] + 1
    rows = await services.cloud.db.fetch("select username, action from operator_audit where target = $1 or "
                                         "(target = 'rule_book' and after::jsonb->>'version' = $2)",
                                         f"rule_book_draft:{draft_id}:1", str(book["version"] + 1))
    assert {(r["username"], r["action"]) for r in rows} == {(f"hq-promo-{RUN}", a) for a in (
        "rule_book.draft.save", "rule_book.draft.publish", "rule_book.change")}


async def test_back_office_hq_admin_edits_a_rule_and_previews_a_basket_then_publishes(office, stack, tmp_path):
    services, url, http, names, heads = office
    in_force = (await http.get("/rule-book", headers=heads["hq"])).json()
    async with office_context(DESK) as (_context, page):
        await office_sign_in(page, url, names["hq"], OPERATOR_PASSWORD, then="/office/promotions")
        assert await page.get_attribute("nav.areas a[aria-current=page]", "href") == "/office/promotions"
        await shot(page, tmp_path, "promotions", DESK)
        await page.click(f"#rules button.edit[data-rule={RULE}]")
        await shot(page, tmp_path, "editor", DESK)
        was = next(r for r in in_force["rules"] if r["id"] == RULE)["percent_off_bp"]
        assert await page.input_value("#t-item_discount-percent_off_bp") == f"{was / 100:g}"
        await page.fill("#t-item_discount-percent_off_bp", "")  # neither percent nor amount: the API says which
        await page.click("#rule-save")
        await page.wait_for_function("document.getElementById('rule-msg').textContent.length > 0")
        said = await page.text_content("#rule-msg")
        assert RULE in said and "percent_off_bp" in said and "{" not in said
        await page.fill("#t-item_discount-percent_off_bp", "40")
        await page.click("#rule-save")
        await page.wait_for_selector("#editor", state="hidden")
        assert "1" in await page.text_content("#draft-state")
        assert RULE in await page.text_content("#draft-changes")

        await page.fill("#p-at", NOON[:16])
        await page.fill("#p-lines .p-sku", SKU)
        await page.click("#p-run")
        await page.wait_for_selector(f"#p-rule-table tr[data-rule={RULE}]")
        row = await page.text_content(f"#p-rule-table tr[data-rule={RULE}]")
        assert "6.28" in row and "已使用" in row
        assert await page.text_content("#p-total") == "9.43"
        await page.locator("#p-result").scroll_into_view_if_needed()
        await shot(page, tmp_path, "preview-draft", DESK)
        await page.select_option("#p-book", "in_force")
        await page.click("#p-run")
        api = (await http.post("/operator/rule-book/preview", json=BASKET, headers=heads["viewer"])).json()
        before = f"{verdict(api, RULE)['saving_fen'] / 100:.2f}"
        assert before != "6.28"
        await page.wait_for_function(f"document.querySelector('#p-rule-table tr[data-rule={RULE}]')"
                                     f".textContent.includes('{before}')")

        async with office_context(PHONE) as (_phone, viewer):  # a viewer sees the draft; the API refuses the publish
            await office_sign_in(viewer, url, names["viewer"], OPERATOR_PASSWORD, then="/office/promotions")
            await viewer.click("#publish")
            await viewer.wait_for_function("document.getElementById('publish-msg').textContent.length > 0")
            refused = await viewer.text_content("#publish-msg")
            assert "viewer" in refused and "{" not in refused and "rule_book.change" in refused
            await shot(viewer, tmp_path, "viewer-refused", PHONE)
            await viewer.fill("#p-at", NOON[:16])  # a viewer may preview: on a phone, the results are cards
            await viewer.fill("#p-lines .p-sku", SKU)
            await viewer.click("#p-run")
            await viewer.wait_for_selector(f"#p-rule-table tr[data-rule={RULE}]")
            assert "6.28" in await viewer.text_content(f"#p-rule-table tr[data-rule={RULE}]")
            await viewer.locator("#p-result").scroll_into_view_if_needed()
            await shot(viewer, tmp_path, "viewer-preview", PHONE)
        assert services.cloud.world.rule_book.version == in_force["version"]

        await page.click("#publish")
        await page.wait_for_function("document.getElementById('publish-msg').classList.contains('ok')")
        assert str(in_force["version"] + 1) in await page.text_content("#publish-msg")
        assert await page.is_hidden("#publish")
        await shot(page, tmp_path, "published", DESK)
        await page.click("#reload")  # the book in force is the published draft now, and no draft is open
        await page.wait_for_selector("#rules")
        assert f"{in_force['version'] + 1}" in await page.text_content("#rules-h")
        assert await page.is_hidden(f"#rules tr[data-rule={RULE}] .draft-mark")

    book = (await http.get("/rule-book", headers=heads["viewer"])).json()
    assert book["version"] == in_force["version"] + 1
    assert book == {**edited_book(in_force, 4000), "version": in_force["version"] + 1}
    [draft] = [d for d in (await http.get("/operator/rule-book/drafts", headers=heads["hq"])).json()["drafts"]
               if d["published_version"] == book["version"]]
    who = await services.cloud.db.fetch("select username, action from operator_audit where target = $1",
                                        f"rule_book_draft:{draft['draft_id']}:{draft['revision']}")
    assert {(r["username"], r["action"]) for r in who} == {(names["hq"], "rule_book.draft.save"),
                                                          (names["hq"], "rule_book.draft.publish")}
    async with StoreLink(stack, STORE) as link:  # the store was sent the published book
        got = await link.commands(until=lambda m: isinstance(m, RuleBookUpdated) and m.version == book["version"],
                                  timeout_s=15)
    sent = [m for m in got if isinstance(m, RuleBookUpdated) and m.version == book["version"]]
    assert sent and json.loads(sent[0].payload) == book


async def test_back_office_campaigns_page_defines_a_coupon_and_lists_segments(office, tmp_path):
    services, url, http, names, heads = office
    async with office_context(PHONE) as (_context, page):
        await office_sign_in(page, url, names["hq"], OPERATOR_PASSWORD, then="/office/campaigns")
        assert await page.locator("#segments tbody tr").count() > 0  # the segments, with their member counts
        await page.fill("#d-id", f"bop-{RUN}")
        await page.fill("#d-name", "")
        await page.click("#define-form [type=submit]")
        await page.wait_for_function("document.getElementById('define-msg').textContent.length > 0")
        assert "name" in await page.text_content("#define-msg")  # the API's refusal, as a sentence
        await page.fill("#d-name", f"Back office {RUN}")
        await page.click("#define-form [type=submit]")
        await page.wait_for_selector(f"#definitions tr[data-definition=bop-{RUN}]")  # listed after the reload
        await shot(page, tmp_path, "campaigns", PHONE)
    made = (await http.get("/operator/coupon-definitions", headers=heads["viewer"])).json()["definitions"]
    assert [d["name"] for d in made if d["definition_id"] == f"bop-{RUN}"] == [f"Back office {RUN}"]


async def test_two_publishes_of_one_revision_at_once_make_one_version(office):
    services, _, http, _, heads = office
    book = (await http.get("/rule-book", headers=heads["hq"])).json()
    draft_id = f"race-{RUN}"
    body = {"draft_id": draft_id, "revision": 1, "rule_book": edited_book(book, 4500)}
    assert (await http.post("/operator/rule-book/drafts", json=body, headers=heads["hq"])).status_code == 201
    stored = await services.cloud.db.fetchval("select count(*) from world_versions")
    path = f"/operator/rule-book/drafts/{draft_id}/publish"
    answers = await asyncio.gather(*(http.post(path, json={"revision": 1}, headers=heads["hq"]) for _ in range(3)))
    assert sorted(a.status_code for a in answers) == [200, 200, 201], [a.text for a in answers]
    assert {a.json()["rule_book_version"] for a in answers} == {book["version"] + 1}
    assert await services.cloud.db.fetchval("select count(*) from world_versions") == stored + 1


async def test_back_office_a_new_spend_threshold_is_scheduled_in_china_time(office, tmp_path):
    services, url, http, names, heads = office
    rule_id = f"ST-{RUN}"
    async with office_context(DESK, locale="en-US") as (_context, page):
        await office_sign_in(page, url, names["hq"], OPERATOR_PASSWORD, then="/office/promotions?lang=en")
        await page.select_option("#new-type", "spend_threshold")
        await page.click("#new-rule")
        assert await page.is_visible("#t-spend_threshold-tiers") and await page.is_hidden("#t-coupon-min_spend_fen")
        await page.fill("#f-id", rule_id)
        await page.fill("#f-name", "New year: spend 100 get 10")
        await page.fill("#f-priority", "10")  # before the book's other spend thresholds
        await page.fill("#f-starts", "2030-01-01T09:00")  # China time
        await page.fill("#t-spend_threshold-tiers", "100:10\n200-30")
        await page.click("#rule-save")
        await page.wait_for_function("document.getElementById('rule-msg').textContent.length > 0")
        assert "spend:off" in await page.text_content("#rule-msg")  # said before anything is sent
        await page.fill("#t-spend_threshold-tiers", "100:10\n200:30")
        await page.click("#rule-save")
        await page.wait_for_selector("#editor", state="hidden")
        assert rule_id in await page.text_content("#draft-changes")
        assert await page.is_visible(f"#rules tr[data-rule={rule_id}] .draft-mark")  # listed, marked, editable
        await page.click(f"#rules tr[data-rule={rule_id}] button.edit")
        assert await page.input_value("#t-spend_threshold-tiers") == "100.00:10.00\n200.00:30.00"
        assert await page.input_value("#f-starts") == "2030-01-01T09:00"
        await shot(page, tmp_path, "scheduled-en", DESK)
        await page.click("#rule-cancel")
    [open_draft] = [d for d in (await http.get("/operator/rule-book/drafts", headers=heads["hq"])).json()["drafts"]
                    if d["published_version"] is None and d["based_on_version"] == services.cloud.world.rule_book.version]
    draft = (await http.get(f"/operator/rule-book/drafts/{open_draft['draft_id']}", headers=heads["hq"])).json()
    [rule] = [r for r in draft["rule_book"]["rules"] if r["id"] == rule_id]
    assert rule == {"type": "spend_threshold", "id": rule_id, "name": "New year: spend 100 get 10", "priority": 10,
                    "starts_ms": 1_893_459_600_000,  # 2030-01-01T01:00:00Z
                    "tiers": [{"spend_fen": 10_000, "off_fen": 1_000}, {"spend_fen": 20_000, "off_fen": 3_000}]}
    # 4 x 35.64 = 142.56 of PAC-TOFU-0197, which no line rule touches: the new rule (priority 10) comes first, 10 off
    ask = {**BASKET, "draft_id": draft["draft_id"], "lines": [{"sku": "PAC-TOFU-0197", "qty": 4}]}
    before = (await http.post("/operator/rule-book/preview", json={**ask, "at": "2029-12-31T23:59:00+08:00"},
                              headers=heads["viewer"])).json()
    after = (await http.post("/operator/rule-book/preview", json={**ask, "at": "2030-01-01T09:00:00+08:00"},
                             headers=heads["viewer"])).json()
    assert verdict(before, rule_id)["effect"] == "scheduled"
    assert (verdict(after, rule_id)["effect"], verdict(after, rule_id)["saving_fen"]) == ("applied", 1_000)
