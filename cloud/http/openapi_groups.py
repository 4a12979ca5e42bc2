"""/openapi.json's entries for the operators' group-buy endpoints (cloud/http/routes/group_buys.py), merged into the
document by `cloud/http/openapi.py` (which passes its own helper, so the two stay one style)."""
from __future__ import annotations

from collections.abc import Callable

NO_SESSION = "no operator session token, or it expired or was revoked"


def group_paths(op: Callable[..., dict]) -> dict:
    return {
        "/operator/group-buys": {
            "get": op("Group buys, newest first (any operator; a store manager: the groups touching their store): "
                      "each with its rule, item, store, status, size, joined, paid, needed, group price, window "
                      "(closes_in_s while open) and outcome; `next_before` is the next page's `before`",
                      ("200", "{groups, next_before}"),
                      {"401": NO_SESSION, "403": "a store manager asking for another store",
                       "422": "status (open, formed, failed, cancelled), store, item (a sku), limit (1-200) or before "
                              "is wrong (the detail names it)"}, operator=True,
                      query=["status", "store", "item", "limit", "before"])},
        "/operator/group-buys/{group_id}": {
            "get": op("One group buy's story: window, members (masked) with their orders' shown statuses "
                      "(group_forming while held), outcome, who cancelled it and why, refunds of its orders",
                      ("200", "{group_id, status, size, joined, paid, needed, window, outcome, cancelled, members, "
                              "refunds, refunded_fen, ...}"),
                      {"401": NO_SESSION, "403": "a store manager of another store's group",
                       "404": "no such group"}, operator=True, params=["group_id"])},
        "/operator/group-buys/{group_id}/cancel": {
            "post": op("End an open group buy (hq_admin; audited) {reason}: its orders cancelled and refunded like a "
                       "failed group's; a retry answers the same", ("200", "the group's detail"),
                       {"401": NO_SESSION, "403": "only an hq_admin cancels a group", "404": "no such group",
                        "409": "the group formed, failed, or its window closed already (reason: formed, failed, "
                               "closing)", "422": "reason missing or over 200 characters"},
                       operator=True, params=["group_id"])},
    }
