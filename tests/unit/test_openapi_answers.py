"""/openapi.json as people and generators read it: operationIds, tags, media types, answer schemas; a valid document."""
from __future__ import annotations

from openapi_spec_validator import validate

from cloud.http.openapi import openapi_document

# DESIGN.md §6: the public contract's endpoints; each answer must be described field by field
CONTRACT = [("/health", "get"), ("/openapi.json", "get"), ("/products", "get"), ("/stores", "get"),
            ("/stores/{store_id}/stock", "get"), ("/orders", "post"), ("/orders/{order_id}", "get"),
            ("/orders/{order_id}/cancel", "post"), ("/flash-sales", "post"), ("/flash-sales/{sale_id}", "get"),
            ("/members/{member_id}", "get"), ("/me", "get"), ("/operator/sessions", "post"), ("/operator/me", "get"),
            ("/console/snapshot", "get")]


def operations():
    for path, ops in openapi_document()["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def test_the_document_is_valid_openapi_3_1():
    validate(openapi_document())


def test_every_operation_has_a_unique_operation_id_and_tags():
    ids = [op.get("operationId") for _, _, op in operations()]
    assert all(ids) and len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert all(op.get("tags") for _, _, op in operations())
    declared = {t["name"] for t in openapi_document()["tags"]}
    assert {t for _, _, op in operations() for t in op["tags"]} <= declared


def test_console_metrics_and_the_stream_have_their_real_media_types():
    doc = openapi_document()["paths"]
    assert list(doc["/console"]["get"]["responses"]["200"]["content"]) == ["text/html"]
    assert list(doc["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain; version=0.0.4"]
    assert list(doc["/console/stream"]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]


def undescribed(document: dict) -> list[tuple[str, str, str]]:
    """Success answers whose body is not described field by field: (path, method, status)."""
    found = []
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if not status.startswith("2") or status == "204":
                    continue
                [(media, content)] = answer["content"].items()
                schema = content["schema"]
                if media != "application/json":
                    if not (schema["type"] == "string" and schema["description"]):
                        found.append((path, method, status))
                elif schema.get("x-shape-described") is False or not schema.get("properties"):
                    found.append((path, method, status))
    return found


def test_every_success_answer_is_described_field_by_field():
    assert undescribed(openapi_document()) == []


def test_an_operation_added_without_its_answer_schema_is_caught():
    from cloud.http.openapi import _op
    from cloud.http.openapi_answers import annotate
    doc = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
           "paths": {"/new-thing": {"get": _op("something new", ("200", "the thing"), {})}}}
    assert undescribed(annotate(doc)) == [("/new-thing", "get", "200")]


def test_the_contracts_answers_have_typed_properties():
    assert not set(CONTRACT) & {(p, m) for p, m, _ in undescribed(openapi_document())}
    for path, method, op in operations():
        for status, answer in op["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            [(media, content)] = answer["content"].items()
            if media == "application/json":
                assert all(typed(p) for p in content["schema"]["properties"].values()), (path, method)


def typed(schema: dict) -> bool:
    """A property says its type (or is any value on purpose), and so do the fields of a nested object or array."""
    if schema == {}:
        return True
    if not ("type" in schema or "anyOf" in schema or "enum" in schema or "oneOf" in schema or "$ref" in schema):
        return False
    parts = [*schema.get("properties", {}).values(), *[s for s in schema.get("anyOf", []) if s]]
    if isinstance(schema.get("items"), dict):
        parts.append(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        parts.append(schema["additionalProperties"])
    return all(typed(p) for p in parts)


def test_the_split_answer_modules_describe_no_operation_twice():
    from cloud.http import openapi_answers_members, openapi_answers_ops
    assert not set(openapi_answers_ops.ANSWERS) & set(openapi_answers_members.ANSWERS)
    paths = openapi_document()["paths"]
    for path, method in [*openapi_answers_ops.ANSWERS, *openapi_answers_members.ANSWERS]:
        assert method in paths.get(path, {}), f"{method} {path}: described but not in the document"
