"""How a domain service says no: a `Refusal` names what was refused (`kind`) and why (`detail`).

Services never speak HTTP; the HTTP layer maps each kind to a status code and a problem type
(`cloud/http/problems.py`). A refusal is an answer, not a failure: it is recorded where a retry must get it again
(an order's Idempotency-Key), and nothing is left half-made behind it.
"""
from __future__ import annotations

from typing import Any, Literal

RefusalKind = Literal[
    "invalid",  # the request names something that does not exist or cannot be (a field's value)
    "unauthorized",  # who is calling is not known (no or a wrong credential)
    "forbidden",  # who is calling is known, and may not do this (an operator's role)
    "locked",  # too many wrong tries: locked for a while
    "not_found",  # the thing asked about does not exist
    "exists",  # creating something whose unique name is taken (an operator's username)
    "key_reused",  # an Idempotency-Key sent again with a different request
    "in_progress",  # an earlier request with this key is still running: retry shortly
    "out_of_stock", "no_store", "slot",  # placing an order
    "order_state",  # the order's state does not allow this step
    "payment",  # the payment was refused (balance, method)
    "coupon",  # a coupon code that cannot be used here and now (the detail and `reason` say why)
    "sold_out", "over_limit", "throttled", "not_started", "ended",  # flash sales
    "group_buy",  # joining a group buy: closed, expired, already in it, full (`reason` says which)
    "unavailable",  # could not be decided now (a backend busy or down): retry with the same key
]


class Refusal(Exception):
    """A business refusal with its reason; `extra` carries details a client can act on (alternatives, missing)."""

    def __init__(self, kind: RefusalKind, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.extra = kind, detail, extra

    def to_record(self) -> dict[str, Any]:
        """For storing with an idempotency key, so the retry answers the same."""
        return {"kind": self.kind, "detail": self.detail, **self.extra}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Refusal:
        data = dict(data)
        return cls(data.pop("kind"), data.pop("detail"), **data)
