"""/openapi.json, finished: every operation gets an operationId and tags, `/console`, `/console/stream` and
`/metrics` their real media types, and the success answers we have described field by field their schema.

`annotate(document)` is applied last by `cloud.http.openapi.openapi_document`. The answer schemas are written from
the code that builds each body (named beside each) and checked against live answers in
tests/integration/test_observability.py and tests/integration/test_openapi_live.py. They are split by area: the
public and console ones here, the operators' stock and reports in `openapi_answers_ops`, members and marketing in
`openapi_answers_members` (shared pieces in `openapi_answers_base`). Every success answer is described: an
operation added without its answer schema still gets one that says so (`x-shape-described: false`), and
tests/unit/test_openapi_answers.py fails on it.
"""
from __future__ import annotations

import re

from cloud.http import openapi_answers_members, openapi_answers_ops, openapi_prices
from cloud.http.openapi_answers_base import BOOL, INT, NUM, ORDER, STR, TIME, array, counts, nullable, obj
from cloud.http.routes.hq_reports import answers as hq_report_answers
from cloud.http.routes.rule_book_drafts import answers as rule_book_draft_answers
from cloud.http.routes.shifts import ANSWER as shifts_answer

STORE_LIVENESS = dict(online=BOOL, offline_since=nullable(TIME), last_heartbeat=nullable(TIME),
                      outbox_depth=nullable(INT), sequence_gap=nullable(INT), lag_ms=nullable(INT),
                      lag_p99_ms=nullable(INT), devices={"type": "object", "additionalProperties": STR})
MEMBER = obj(["member_id", "stored_value_fen", "points", "level"],  # cloud/services/members.py view
             member_id=STR, phone=STR, member_code=STR, created_at=TIME, stored_value_fen=INT, points=INT, level=STR)
FLASH_SALE = obj(["sale_id", "sku", "quantity", "sold", "remaining"],  # cloud/services/flash_sales.py status
                 sale_id=STR, sku=STR, quantity=INT, sold=INT, remaining=INT, leased=INT, price_fen=INT,
                 per_member_limit=INT, rate_per_s=NUM, starts_at=TIME, ends_at=TIME, members=INT,
                 rejected_over_limit=INT, returned=INT, stores={})
OPERATOR = obj(["operator_id", "username", "role", "store_id"],  # cloud/services/operators.py Operator.to_json
               operator_id=STR, username=STR, role={"enum": ["hq_admin", "store_manager", "viewer"]},
               store_id=nullable(STR))
SNAPSHOT = obj(["at", "at_ms", "summary", "actors", "stores", "alerts"],  # cloud/console/snapshot.py build_snapshot
               at=TIME, at_ms=INT, worker=STR, timezone=obj(["utc_offset_minutes", "name"], utc_offset_minutes=INT,
                                                            name=STR),
               summary=obj(["actors", "actors_bad", "stores", "stores_online", "alerts", "critical"], actors=INT,
                           actors_bad=INT, stores=INT, stores_online=INT, alerts=INT, critical=INT),
               actors=array(obj(["name", "kind", "state", "health", "restarts"], name=STR, kind=STR, shard=STR,
                                state=STR, health=STR, bad=BOOL, restarts=INT, queue=nullable(INT))),
               stores=array(obj(["store_id", "online", "status"], store_id=STR, name=STR, online=BOOL, status=STR,
                                heartbeat_age_s=nullable(NUM), outbox_depth=nullable(INT), lag_ms=nullable(INT))),
               alerts=array(obj(["id", "kind", "severity", "message", "since"], id=STR, kind=STR, subject=STR,
                                severity={"enum": ["critical", "warning"]}, message=STR, since=TIME)),
               business=nullable({"type": "object"}), audit=nullable({"type": "object"}),
               errors={"type": "object", "additionalProperties": STR},
               backend=obj(["nats", "postgres", "bridge", "dead_letters"], nats=obj(["ok"], ok=BOOL),
                           postgres=obj(["ok"], ok=BOOL, latency_ms=nullable(NUM)),
                           bridge=obj(["ok"], ok=BOOL, pending=INT, ack_pending=INT),
                           dead_letters=obj(["ok"], ok=BOOL, count=INT)))

TOP_UP = obj(["top_up_id", "member_id", "amount_fen", "method", "state"],  # cloud/services/top_ups.py top_up_json
             top_up_id=STR, member_id=STR, amount_fen=INT, method=STR, simulated=BOOL,
             state=STR, pay=nullable({"type": "object"}),
             provider_txn_id=nullable(STR), created_at=TIME, detail=STR, stored_value_fen=INT)

WORLD_CHANGED = obj(["version", "stores", "products", "rule_book_version"],  # cloud/services/world_admin.py change
                    version=INT, stores=INT, products=INT, rule_book_version=INT)
ACCOUNT = obj(["operator_id", "username", "role", "store_id", "created_at", "disabled"],  # operators.create
              operator_id=STR, username=STR, role=STR, store_id=nullable(STR), created_at=TIME, disabled=BOOL)

# (path, method) -> the success answer's schema
ANSWERS: dict[tuple[str, str], dict] = {
    ("/health", "get"): obj(["status", "checks", "worker", "version"], status={"enum": ["ok", "degraded"]},
                            checks=obj(["database", "actors", "nats"], database=STR, actors=STR, nats=STR),
                            worker=STR, version=STR, database_latency_ms=nullable(NUM)),
    ("/openapi.json", "get"): obj(["openapi", "info", "paths"], openapi=STR, info={"type": "object"},
                                  paths={"type": "object"}, components={"type": "object"}),
    ("/products", "get"): obj(["products", "rule_book_version"], rule_book_version=INT,
                              products=array(obj(["sku", "name", "unit", "price_fen"], sku=STR, name=STR,
                                                 unit={"enum": ["kg", "piece"]}, price_fen=INT))),
    ("/stores", "get"): obj(["stores"], stores=array(obj(
        ["store_id", "name", "online"], store_id=STR, name=STR, lat=NUM, lon=NUM, open=BOOL, till_sales=INT,
        till_sales_fen=INT, **STORE_LIVENESS))),
    ("/stores/{store_id}/stock", "get"): obj(  # cloud/services/stock.py store_view
        ["store_id", "online", "stock"], store_id=STR, online=BOOL, lag_ms=nullable(INT), lag_p99_ms=nullable(INT),
        outbox_depth=nullable(INT),
        stock=array(obj(["sku", "escrow", "reserved", "confirmed", "available_online"], sku=STR,
                        on_hand=nullable(INT), escrow=INT, reserved=INT, confirmed=INT, available_online=INT,
                        presale=BOOL, in_transit=INT,  # lots: cloud/messaging/lots.py store_lots
                        lots=array(obj(["lot", "use_by", "on_hand"], lot=STR, use_by=STR, on_hand=INT))))),
    ("/orders", "post"): ORDER,
    ("/orders/{order_id}", "get"): ORDER,
    ("/orders/{order_id}/cancel", "post"): ORDER,
    ("/flash-sales", "post"): FLASH_SALE,
    ("/flash-sales/{sale_id}", "get"): FLASH_SALE,
    ("/members/{member_id}", "get"): MEMBER,
    ("/me", "get"): MEMBER,
    ("/auth/codes", "post"): obj(["phone", "expires_at"], phone=STR, expires_at=TIME),  # identity.request_code
    ("/auth/sessions", "post"): obj(["token", "member_id", "registered", "expires_at"], token=STR,  # sign_in
                                    member_id=STR, registered=BOOL, expires_at=TIME),
    ("/members/{member_id}/top-ups", "post"): TOP_UP,
    ("/members/{member_id}/top-ups/{top_up_id}", "get"): TOP_UP,
    ("/auth/passes", "post"): obj(["pass", "expires_at"], expires_at=TIME, **{"pass": STR}),
    ("/operator/sessions", "post"): obj(["token", "operator_id", "username", "role", "expires_at"], token=STR,
                                        operator_id=STR, username=STR, role=STR, store_id=nullable(STR),
                                        expires_at=TIME),
    ("/operator/me", "get"): OPERATOR,
    ("/operators", "get"): obj(["operators"], operators=array(ACCOUNT)),
    ("/operators", "post"): ACCOUNT,
    ("/operator/audit", "get"): obj(["entries", "next_before"], next_before=nullable(INT), entries=array(obj(
        ["audit_id", "at", "action", "target"], audit_id=INT, at=TIME, operator_id=nullable(STR),
        username=nullable(STR), action=STR, target=STR, before={}, after={}))),
    ("/audit", "get"): obj(["actors", "violations", "reported"], actors=INT, violations=array(STR),  # stock.audit
                           reported=obj(["coupon_conflicts"], coupon_conflicts=INT)),
    # cloud/services/coupons.py: issue, rules, conflicts (definitions and the wallet: openapi_answers_members)
    ("/operator/coupon-definitions/{definition_id}/issue", "post"): obj(
        ["issued", "refused", "definition_id", "batch_id"], definition_id=STR, batch_id=STR,
        issued=array(obj(["member_id", "code"], member_id=STR, code=STR)),
        refused=array(obj(["member_id", "reason"], member_id=STR, reason=STR))),
    ("/operator/coupon-rules", "get"): obj(["rules"], rules=array(obj(["rule_id", "name"], rule_id=STR, name=STR,
                                                                     amount_off_fen=nullable(INT)))),
    ("/operator/coupons/conflicts", "get"): obj(["conflicts"], conflicts=array(obj(
        ["conflict_id", "code", "store_id"], conflict_id={}, code=STR, store_id=STR))),
    ("/products", "put"): WORLD_CHANGED,
    ("/rule-book", "put"): WORLD_CHANGED,
    ("/stores/{store_id}", "put"): WORLD_CHANGED,
    ("/console/snapshot", "get"): SNAPSHOT,
    ("/orders/{order_id}/pay", "post"): ORDER,  # cloud/services/order_saga.py pay: the order (payment in it)
    ("/flash-sales/{sale_id}/orders", "post"): obj(  # cloud/services/flash_sales.py _body
        ["order_id", "sale_id", "status", "qty", "total_fen"], order_id=STR, sale_id=STR, status=STR,
        member_id=STR, qty=INT, price_fen=INT, total_fen=INT, sku=STR),
    ("/promotion-budgets", "get"): obj(  # cloud/http/routes/promotions.py budgets
        ["rule_book_version", "budgets"], rule_book_version=INT,
        budgets=array(obj(["rule_id", "name", "type", "used_fen"], rule_id=STR, name=STR, type=STR,
                          budget_fen=nullable(INT), per_member_limit=nullable(INT), used_fen=INT,
                          left_fen=nullable(INT), store_shares_fen=counts(), store_used_fen=counts(),
                          store_over_fen=counts()))),  # store -> fen (actors/promotion_budgets.py)
    ("/callbacks/rider", "post"): obj(["code", "message"], code=INT, message=STR),  # the platform's own shape
    ("/callbacks/marketplace/{marketplace}", "post"): obj(["code", "message"], code=INT, message=STR),
}
ANSWERS.update(openapi_answers_ops.ANSWERS)
ANSWERS.update(openapi_answers_members.ANSWERS)
ANSWERS.update(rule_book_draft_answers())  # the promotion book editor (cloud/http/routes/rule_book_drafts.py)
ANSWERS.update(hq_report_answers())  # HQ's chain reports (cloud/http/routes/hq_reports.py)
ANSWERS.update(openapi_prices.ANSWERS)  # HQ's catalogue and prices
ANSWERS[("/operator/shifts", "get")] = shifts_answer  # cashiers' shift reports (cloud/http/routes/shifts.py)
# Answers that are not JSON objects: their media type and what is in them.
MEDIA: dict[tuple[str, str], tuple[str, dict]] = {
    ("/console", "get"): ("text/html", {"type": "string", "description": "the console page (no data in it)"}),
    ("/metrics", "get"): ("text/plain; version=0.0.4", {
        "type": "string", "description": "Prometheus text exposition: the API workers' counters summed over every "
                                         "worker, and the chain's state (cloud/http/domain_metrics.py)"}),
    ("/orders/{order_id}/events", "get"): ("text/event-stream", {
        "type": "string", "description": "server-sent events: one `step` event per timeline entry of the order "
                                         "(id: its seq; resume with Last-Event-ID), comments as keep-alive"}),
    ("/console/stream", "get"): ("text/event-stream", {
        "type": "string", "description": "server-sent events: one `snapshot` event a tick whose data is a console "
                                         "snapshot (the schema of GET /console/snapshot), comments as keep-alive",
        "x-event-data": {"$ref": "#/components/schemas/ConsoleSnapshot"}}),
}
MEDIA.update(openapi_answers_members.MEDIA)
MEDIA.update(openapi_prices.MEDIA)
TAG_OF_SEGMENT = {"operator": "operations", "operators": "operators", "callbacks": "provider callbacks",
                  "auth": "members: sign-in", "me": "members", "members": "members", "console": "console",
                  "health": "running", "metrics": "running", "openapi.json": "running", "audit": "running"}


def operation_id(method: str, path: str) -> str:
    """e.g. get /stores/{store_id}/stock -> getStoresByStoreIdStock: stable, unique per path and method."""
    words = []
    for part in path.strip("/").split("/"):
        if part.startswith("{"):
            words.append("By" + "".join(w.capitalize() for w in part.strip("{}").split("_")))
        else:
            words.append("".join(w.capitalize() for w in re.split(r"[-_.]", part)))
    return method.lower() + "".join(words)


def tags_of(path: str) -> list[str]:
    parts = [p for p in path.strip("/").split("/") if p and not p.startswith("{")]
    first = parts[0] if parts else "running"
    if first == "operator" and len(parts) > 1:
        return ["operations", parts[1]]
    return [TAG_OF_SEGMENT.get(first, first)]


def success_status(responses: dict) -> list[str]:
    return [s for s in responses if s.startswith("2")]


def annotate(document: dict) -> dict:
    document.setdefault("components", {}).setdefault("schemas", {})["ConsoleSnapshot"] = SNAPSHOT
    tags: set[str] = set()
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            op["operationId"] = operation_id(method, path)
            op["tags"] = tags_of(path)
            tags.update(op["tags"])
            for status, description in openapi_answers_members.ALSO.get((path, method), {}).items():
                op["responses"].setdefault(status, {"description": description,
                                                    "content": {"application/json": {"schema": {}}}})
            for status in success_status(op["responses"]):
                answer = op["responses"][status]
                if status == "204":
                    answer.pop("content", None)  # no body
                elif (path, method) in MEDIA:
                    media, schema = MEDIA[(path, method)]
                    answer["content"] = {media: {"schema": schema}}
                elif (path, method) in ANSWERS:
                    answer["content"] = {"application/json": {"schema": ANSWERS[(path, method)]}}
                else:
                    answer["content"]["application/json"]["schema"] = {  # a new operation's: the unit test fails
                        "type": "object", "x-shape-described": False,
                        "description": f"{answer['description']} (fields described in the summary; schema to come)"}
    document["tags"] = [{"name": t} for t in sorted(tags)]
    return document
