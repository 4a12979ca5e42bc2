"""The promotion book editor's API (issue 21, build 2; `cloud/services/rule_book_drafts.py`):

- `POST /operator/rule-book/preview` (views.read): a basket priced with the book in force, a saved draft
  (`draft_id`, `revision`) or an inline `rule_book`, at a till (`channel: offline`) or online, for a member level
  and a moment (`at`, RFC 3339): each line's price and each rule's effect (applied with its saving, or why not).
- `GET /operator/rule-book/schedule[?at=]` (views.read): the book in force rule by rule, with its status at `at`
  (scheduled / live / ended) and budget used.
- `POST /operator/rule-book/drafts` (rule_book.change; audited) `{draft_id, revision, rule_book, note}`: saves a
  revision (201; the same save again: 200); `GET /operator/rule-book/drafts` and
  `GET /operator/rule-book/drafts/{draft_id}[?revision=]` (views.read) read them.
- `POST /operator/rule-book/drafts/{draft_id}/publish` (rule_book.change; audited) `{revision}`: the revision
  becomes the book in force, sent to every store (201; again: 200 with the first publication).
"""
from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.http.parsing import WORLD_BODY_MAX_BYTES, read_json
from cloud.http.problems import HTTPProblem
from cloud.services import rule_book_drafts
from protocol.clock import parse_rfc3339


def routes(services) -> list[tuple]:
    async def preview(request):
        await require_operator(request, services, "views.read")
        body = await read_json(request, WORLD_BODY_MAX_BYTES)
        return JSONResponse(await rule_book_drafts.of(services).preview(body))

    async def schedule(request):
        await require_operator(request, services, "views.read")
        at = request.query_params.get("at")
        return JSONResponse(await rule_book_drafts.of(services).schedule(parse_rfc3339(at, "at") if at else None))

    async def save(request):
        operator = await require_operator(request, services, "rule_book.change")
        body = await read_json(request, WORLD_BODY_MAX_BYTES)
        saved, made = await rule_book_drafts.of(services).save(body, operator)
        return JSONResponse(saved, status_code=201 if made else 200)

    async def listed(request):
        await require_operator(request, services, "views.read")
        return JSONResponse({"drafts": await rule_book_drafts.of(services).list()})

    async def one(request):
        await require_operator(request, services, "views.read")
        raw = request.query_params.get("revision")
        if raw is not None and not raw.isdigit():
            raise HTTPProblem(422, "revision: a positive integer")
        return JSONResponse(await rule_book_drafts.of(services).get(request.path_params["draft_id"],
                                                                   int(raw) if raw else None))

    async def publish(request):
        operator = await require_operator(request, services, "rule_book.change")
        body = await read_json(request)
        pub, made = await rule_book_drafts.of(services).publish(request.path_params["draft_id"], body, operator)
        return JSONResponse(pub, status_code=201 if made else 200)

    return [("/operator/rule-book/preview", preview, ["POST"]), ("/operator/rule-book/schedule", schedule, ["GET"]),
            ("/operator/rule-book/drafts", save, ["POST"]), ("/operator/rule-book/drafts", listed, ["GET"]),
            ("/operator/rule-book/drafts/{draft_id}", one, ["GET"]),
            ("/operator/rule-book/drafts/{draft_id}/publish", publish, ["POST"])]


NO_SESSION = "no operator session token, or it expired or was revoked"
ROLE = "the operator's role may not do this"


def paths(op: Callable[..., dict]) -> dict:
    """Its /openapi.json entries (merged by `cloud/http/openapi.py` with its own helper)."""
    return {
        "/operator/rule-book/preview": {"post": op(
            "Price a basket with the promotion book in force, a saved draft ({draft_id, revision}) or an inline "
            "rule_book: {channel: offline | online, store_id, member_level, at (RFC 3339), new_member, coupons (rule "
            "ids held), formed_groups, lines: [{sku, qty} | {sku, weight_g}, use_by]}; nothing is consumed",
            ("200", "{lines: [{sku, name, qty, weight_g, list_fen, amount_fen, saving_fen, rules}], rules: [{rule_id, "
                    "type, name, status, effect: applied | scheduled | ended | channel | store | out_of_window | "
                    "member_level | near_miss | below_threshold | not_in_basket | budget | exclusive | ..., saving_fen, "
                    "why}], gifts, near_misses, subtotal_fen, total_fen, discount_fen, refused_lines, draft, at}"),
            {"401": NO_SESSION, "403": ROLE, "404": "no such draft or revision",
             "422": "a field is wrong, or the draft's rule is invalid (the detail names the rule and field)"},
            operator=True)},
        "/operator/rule-book/schedule": {"get": op(
            "The promotion book in force rule by rule: type, channels, stores, window, levels, status at ?at= "
            "(scheduled | live | ended), budget and budget used",
            ("200", "{rule_book_version, at, rules: [{rule_id, type, name, channels, stores, starts_at, ends_at, "
                    "daily, member_levels, status, budget_fen, budget_used_fen, per_member_limit}]}"),
            {"401": NO_SESSION, "403": ROLE, "422": "at: not an RFC 3339 time"}, operator=True, query=["at"])},
        "/operator/rule-book/drafts": {
            "post": op("Save a revision of a promotion book draft (hq_admin; audited): {draft_id, revision (1 new, "
                       "then the next), rule_book: {rules, utc_offset_minutes}, note}; validated as PUT /rule-book",
                       ("201", "the revision: {draft_id, revision, based_on_version, rule_book, note, saved_by, "
                               "saved_at} (200: the same save again)"),
                       {"401": NO_SESSION, "403": ROLE, "409": "the revision is taken or not the next one",
                        "422": "a rule is invalid (the detail names the rule and field)"}, operator=True),
            "get": op("Promotion book drafts, newest first, with their published version",
                      ("200", "{drafts: [{draft_id, revision, based_on_version, note, saved_by, saved_at, "
                              "published_version}]}"), {"401": NO_SESSION, "403": ROLE}, operator=True)},
        "/operator/rule-book/drafts/{draft_id}": {"get": op(
            "A draft's revision (?revision=, default the newest) with its rules, publication and revisions",
            ("200", "{draft_id, revision, based_on_version, rule_book, note, saved_by, saved_at, published, revisions}"),
            {"401": NO_SESSION, "403": ROLE, "404": "no such draft or revision", "422": "revision: not a number"},
            operator=True, params=["draft_id"], query=["revision"])},
        "/operator/rule-book/drafts/{draft_id}/publish": {"post": op(
            "Publish a draft's revision as the book in force (hq_admin; audited): sent to every store; {revision}",
            ("201", "{draft_id, revision, rule_book_version, published_by, published_at} (200: already published)"),
            {"401": NO_SESSION, "403": ROLE, "404": "no such draft or revision",
             "409": "the book in force is not the one the draft was made from", "422": "revision: missing"},
            operator=True, params=["draft_id"])},
    }


def answers() -> dict[tuple[str, str], dict]:
    """The success answers' schemas (merged by `cloud/http/openapi_answers.py`)."""
    from cloud.http.openapi_answers_base import BOOL, INT, STR, TIME, array, nullable, obj
    book = obj(["rules"], rules=array(obj(["id", "type"], id=STR, type=STR, name=STR)), utc_offset_minutes=INT)
    publication = obj(["draft_id", "revision", "rule_book_version", "published_by", "published_at"], draft_id=STR,
                      revision=INT, rule_book_version=INT, published_by=STR, published_at=TIME)
    draft = obj(["draft_id", "revision", "based_on_version", "rule_book", "note", "saved_by", "saved_at"],
                draft_id=STR, revision=INT, based_on_version=INT, rule_book=book, note=STR, saved_by=STR, saved_at=TIME,
                published=nullable(publication))
    line = obj(["sku", "name", "list_fen", "amount_fen", "saving_fen", "rules"], sku=STR, name=STR, qty=INT,
               weight_g=INT, unit_price_fen=INT, list_fen=INT, amount_fen=INT, saving_fen=INT, rules=array(STR))
    verdict = obj(["rule_id", "type", "name", "status", "in_scope", "effect", "saving_fen", "why"], rule_id=STR,
                  type=STR, name=STR, status=STR, in_scope=BOOL, effect=STR, saving_fen=INT, why=STR)
    preview = obj(["rule_book_version", "lines", "rules", "subtotal_fen", "total_fen", "discount_fen", "draft", "at",
                   "refused_lines"], rule_book_version=INT, channel=STR, store_id=STR, member_level=nullable(STR),
                  lines=array(line), rules=array(verdict), member_price=array(obj(["rule_id"], rule_id=STR)),
                  gifts=array(obj(["rule_id", "sku"], rule_id=STR, sku=STR)),
                  near_misses=array(obj(["rule_id", "message"], rule_id=STR, message=STR, missing_fen=INT)),
                  subtotal_fen=INT, total_fen=INT, discount_fen=INT, draft=BOOL, at=TIME,
                  refused_lines=array(obj(["index", "reason"], index=INT, sku=nullable(STR), reason=STR)))
    rule = obj(["rule_id", "type", "name", "status"], rule_id=STR, type=STR, name=STR, channels=array(STR),
               stores=array(STR), starts_at=nullable(TIME), ends_at=nullable(TIME), daily=array(STR),
               member_levels=array(STR), status=STR, budget_fen=INT, budget_used_fen=INT, per_member_limit=INT)
    listed = obj(["draft_id", "revision", "saved_by", "saved_at", "published_version"], draft_id=STR, revision=INT,
                 based_on_version=INT, note=STR, saved_by=STR, saved_at=TIME, published_version=nullable(INT))
    revisions = array(obj(["revision"], revision=INT, saved_by=STR, saved_at=TIME, note=STR,
                          published_version=nullable(INT)))
    return {("/operator/rule-book/preview", "post"): preview,
            ("/operator/rule-book/schedule", "get"): obj(["rule_book_version", "at", "rules"], rule_book_version=INT,
                                                         at=TIME, rules=array(rule)),
            ("/operator/rule-book/drafts", "post"): draft,
            ("/operator/rule-book/drafts", "get"): obj(["drafts"], drafts=array(listed)),
            ("/operator/rule-book/drafts/{draft_id}", "get"): {**draft, "properties": {
                **draft["properties"], "revisions": revisions}},
            ("/operator/rule-book/drafts/{draft_id}/publish", "post"): publication}
