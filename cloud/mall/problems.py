"""A problem+json answer as the mall's customer reads it: in the page's language, never raw JSON.

The public API's `detail` is an English sentence for developers (it names exactly what was wrong); a customer on a
Chinese page must not read English. As the till does for its refusals (edge/till/refusals.py), the mall knows the
sentences and problem types the API answers and says each in the page's language from its catalogue:

1. a known sentence (`SENTENCES`, matched on `detail`): its word alone, in either language;
2. else a known problem type (`BY_TYPE`, the problem's `type` from cloud/http/problems.py): its word; an English
   page adds the API's detail after it (it is English and says more), a Chinese page does not;
3. else 422: "something is not filled in right" (+ the detail on an English page);
4. else the API's detail as it came (never dropped), or the generic sentence when there is none.

The page's script applies the same rules with the same tables (`for_page`, handed to it as JSON by base.html), so
`sentence` here is the reference the unit test checks. Pure: no I/O.
"""
from __future__ import annotations

import re

from cloud.mall import i18n

# problem type -> word; every type cloud/http/problems.py answers (tests/unit/test_mall_i18n.py checks the set)
BY_TYPE: dict[str, str] = {
    "/problems/unauthorized": "sign_in_needed", "/problems/forbidden": "problem_forbidden",
    "/problems/locked": "problem_locked", "/problems/exists": "problem_exists",
    "/problems/idempotency-key-reused": "problem_key_reused", "/problems/in-progress": "problem_in_progress",
    "/problems/out-of-stock": "problem_out_of_stock", "/problems/no-store": "problem_no_store",
    "/problems/slot": "problem_slot", "/problems/order-state": "problem_order_state",
    "/problems/payment": "problem_payment", "/problems/coupon": "problem_coupon",
    "/problems/sold-out": "problem_sold_out", "/problems/not-started": "problem_not_started",
    "/problems/ended": "problem_ended", "/problems/over-limit": "problem_over_limit",
    "/problems/throttled": "problem_throttled", "/problems/group-buy": "problem_group_buy",
    "/problems/unavailable": "problem_unavailable",
}

# (word, pattern on the API's English detail): the first match wins; patterns are plain enough for JS's RegExp too
# (no named groups, no look-behind), because the page runs the same table
SENTENCES: tuple[tuple[str, str], ...] = (
    ("problem_slot_full", r"the slot is full"),
    ("problem_store_closed", r"the store is closed or the slot is not on the store's slot grid"),
    ("problem_balance", r"insufficient stored value|stored value short|insufficient balance"),
    ("problem_points", r"insufficient points"),
    ("problem_code_wrong", r"^wrong code|^no valid code for this phone"),
    ("problem_locked", r"too many wrong codes|wrong codes: this phone is locked"),
    ("problem_phone", r"^phone: "),
    ("problem_group_full", r"^group \S+ is full"),
    ("problem_window", r"window has passed|closed without forming"),
    ("group_formed", r"has already formed: it takes no more members"),
    ("problem_group_buy", r"^you are already in this group"),
    ("problem_qty", r"^(items\[\d+\]\.)?qty"),
    ("problem_erase_open_orders", r"order\(s\) still open"),  # why an account cannot be erased yet
    ("problem_erase_balance", r"stored value of \d+ fen is left"),
    ("mc_delete_type", r"^confirm: send exactly"),
)
_COMPILED = tuple((word, re.compile(pattern)) for word, pattern in SENTENCES)
COLON = {"zh": "：", "en": ": "}


def sentence(status: int, problem: object, lang: str) -> str:
    """The customer's sentence for an error answer (`problem`: the parsed body, or None when it was not JSON)."""
    w = i18n.words(lang)
    body = problem if isinstance(problem, dict) else {}
    detail = body.get("detail") if isinstance(body.get("detail"), str) else ""
    for word, pattern in _COMPILED:
        if detail and pattern.search(detail):
            return w[word]
    key = BY_TYPE.get(str(body.get("type", ""))) or ("problem_invalid" if status == 422 else None)
    if key is not None:
        return w[key] + COLON["en"] + detail if detail and i18n.lang_of(lang) == "en" else w[key]
    return detail or w["error_generic"]


def for_page() -> dict:
    """The tables as the page's script reads them (the words themselves come with the page's catalogue)."""
    return {"types": BY_TYPE, "sentences": [list(pair) for pair in SENTENCES]}
