"""OpenAPI for the stock-policy and stores endpoints added with the back office (issue 21 items 3 and 4)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloud.http.openapi_answers_ops import TRANSFER

DECISION_BODY = {"type": "object", "required": ["decision"], "additionalProperties": False,
                 "properties": {"decision": {"enum": ["approve", "refuse"]},
                                "reason": {"type": "string", "maxLength": 200}}}


def paths(op: Callable[..., dict]) -> dict[str, Any]:
    decision = op(
        "Approve or refuse a transfer a store manager asked of another store (the sending store's manager or an "
        "hq_admin; audited; a refusal says why). Approved, the sending store is told to dispatch; the same decision "
        "again answers the transfer as it is", ("200", "the transfer (requested, or refused)"),
        {"401": "not signed in as an operator", "403": "not the sending store's manager nor HQ",
         "404": "unknown transfer", "409": "decided otherwise already, or cancelled",
         "422": "decision: approve | refuse; a refusal needs a reason"},
        operator=True, params=["transfer_id"])
    decision["requestBody"] = {"required": True, "content": {"application/json": {"schema": DECISION_BODY}}}
    return {"/operator/transfers/{transfer_id}/decision": {"post": decision}}


ANSWERS: dict[tuple[str, str], Any] = {
    ("/operator/transfers/{transfer_id}/decision", "post"): TRANSFER,
}
