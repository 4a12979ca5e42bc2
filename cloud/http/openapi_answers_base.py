"""The building blocks of the answer schemas in /openapi.json (cloud/http/openapi_answers*.py): JSON Schema types,
`obj` (an answer object whose named fields are always there), and the shapes several answers share (an order, a
member). Pure data; no I/O.
"""
from __future__ import annotations

from typing import Any

STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
DAY = {"type": "string", "format": "date"}
ANY: dict = {}  # any JSON value: a field whose content is another system's (a provider's answer, an audit's before)


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: list[str], **props: Any) -> dict:
    """An answer object: the fields named are always there; more may be added (clients must ignore unknown ones)."""
    return {"type": "object", "required": required, "properties": props}


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


def counts(value: dict | None = None) -> dict:
    """A map from a name (a status, a store, a channel) to a count or an amount."""
    return {"type": "object", "additionalProperties": value or INT}


LINE = obj(["sku"], sku=STR, qty=INT, amount_fen=INT)
PAYMENT = obj(  # cloud/services/payments.py payment_json; `pay`: the provider payment to pay (prepay_id, code_url)
    ["movement_id", "method", "amount_fen", "state", "simulated"], movement_id=STR, method=STR, amount_fen=INT,
    state=STR, simulated=BOOL, pay={"type": "object"}, provider_txn_id=STR, detail=nullable(STR))
TIMELINE_ENTRY = obj(  # cloud/services/order_journal.py timeline_json, as protocol/order_lifecycle.py shows it
    ["seq", "event", "status", "at"], seq=INT, event=STR, status=STR, status_text=STR, at=TIME, store_id=STR,
    detail={"type": "object"})
ORDER = obj(["order_id", "status", "kind", "lines", "total_fen", "final"],  # cloud/services/order_rows.py order_json
            order_id=STR, status=STR, kind=STR, member_id=nullable(STR), stores=array(STR), lines=array(LINE),
            total_fen=INT, pickup_code=nullable(STR), slot_start=nullable(TIME), expires_at=nullable(TIME),
            created_at=TIME, payment=nullable(PAYMENT), fulfilment=nullable(STR), refunded_fen=INT,
            final=BOOL, allow_substitutions=nullable(BOOL), timeline=array(TIMELINE_ENTRY))
