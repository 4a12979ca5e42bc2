"""/openapi.json's entries for the back office's pages (`/office...`, cloud/office/), which answer HTML: a page
needs the operator's `office_session` cookie (the operator API's own session token), else it answers 303 to the
sign-in page; a role that may not open it gets a 403 page saying why. Every change a page makes goes through the
operator JSON API described elsewhere in this document. Merged in by `cloud/http/openapi.py` (its `_op`)."""
from __future__ import annotations

from collections.abc import Callable

from cloud.http import openapi_answers

# (path, summary, path parameters); each area adds its pages here
PAGES: list[tuple[str, str, list[str]]] = [
    ("/office", "The back office's home: the areas the signed-in operator may open", []),
    ("/office/signin", "Operator sign-in (through POST /operator/sessions)", []),
    ("/office/static/{name}", "The back office's CSS and JS (served by the cloud; no CDN)", ["name"]),
    ("/office/services", "Local services: a store's day schedule per staff (?store=&date=) and its service book "
                         "(services, staff, hours; saved through PUT /operator/stores/{id}/services)", []),
    ("/office/stock", "Stock policy: the chain-wide stock view (?store=&sku=&category=; a store manager sees their "
     "own store), allocation ratios, reorder points, markdown rules, transfers to approve", []),
    ("/office/stores", "The stores with their boxes' health (online, lag, outbox, disk, devices)", []),
    ("/office/stores/{store_id}", "One store: location, hours, reach, slots, delivery fee, open or closed (read-only "
     "for a store manager of another store)", ["store_id"]),
    ("/office/stalls", "Market stalls: HQ lists and creates stalls; a stall owner is taken to their own stall", []),
    ("/office/stalls/{stall_id}", "One stall: fee rule, settlement and sales for a period (?from=&to=), its products "
                                  "(names and prices changed by its owner or HQ)", ["stall_id"]),
    ("/office/promotions", "The promotion book: rules and their status, the editor (a draft), the preview, publishing", []),
    ("/office/campaigns", "Coupon definitions, issuing one to a segment, the segments", []),
    ("/office/reports", "HQ reports: a report, a date range, a store (category, grouping), its chart and table "
                        "(?report=&from=&to=&store=&category=&group_by=; cloud/office/reports.py)", []),
    ("/office/reports/csv", "The chosen report as a CSV download (text/csv; the same parameters)", []),
    ("/office/marketplaces", "Marketplaces: a store's shares per marketplace (set through PUT /stores/{id}/marketplaces/"
     "{m}/share), what each holds now, and the orders they sent (?store=)", []),
    ("/office/catalogue", "Products and prices: search, import with a preview, export, the version history", []),
    ("/office/catalogue/{sku}", "One product: its details, store and member-level prices, scheduled changes, history",
     ["sku"]),
]
HTML = {"type": "string", "description": "an HTML page of the back office (Simplified Chinese, ?lang=en for "
                                         "English; a sentence, never a raw problem body, when it cannot be shown)"}


def office_paths(op: Callable[..., dict]) -> dict:
    paths: dict[str, dict] = {}
    for path, summary, params in PAGES:
        paths[path] = {"get": op(summary, ("200", "text/html"),
                                 {"303": "not signed in: to /office/signin?next=...",
                                  "403": "the operator's role may not open it (an HTML page says why)",
                                  "404": "no such page"}, params=params)}
        openapi_answers.MEDIA[(path, "get")] = ("text/html", HTML)
    openapi_answers.MEDIA[("/office/reports/csv", "get")] = (
        "text/csv", {"type": "string", "description": "the report's columns, its rows and a total line"})
    openapi_answers.MEDIA[("/office/static/{name}", "get")] = (
        "text/css", {"type": "string", "description": "a stylesheet (text/css) or script (text/javascript)"})
    return paths
