"""The back office's catalogue and prices (issue 21.1): the products (search, filter by category), one product's
page (its details, its store prices and member-level prices, its scheduled changes, its history), a sheet import
with a preview of every row and error, the export, and the catalogue's version history.

Pages only read (the world in this process, the audit log through `cloud.services.prices.Prices`); every change is
made by the page's script (static/catalogue.js) through the operator API (cloud/http/routes/prices.py), which
validates, audits and sends the change to the stores. Anyone with `views.read` may look; the forms are shown to
those whose role may change the catalogue (`catalogue.change`: hq_admin), and the API decides again."""
from __future__ import annotations

from cloud.office import i18n
from cloud.office.pages import TEMPLATES, lang_of, office_operator, office_page
from cloud.services.prices import Prices
from cloud.services.verdicts import Refusal
from protocol.clock import parse_rfc3339
from protocol.errors import ProtocolError
from protocol.messages import SKU_RE
from protocol.money import format_fen

LIST_MAX = 300  # products on one page of the list (a search narrows it)
HISTORY_SHOWN = 20


class _NoWrites:
    """The pages read only: a Prices whose world admin refuses (writes go through the API)."""

    async def change(self, *args, **kwargs):
        raise RuntimeError("the catalogue pages do not write: the API does")


def china_time(rfc3339: str | None) -> str:
    """An RFC 3339 time as the chain's local time (UTC+8) to the minute."""
    try:
        return i18n.local_time(parse_rfc3339(rfc3339 or "", "time"))
    except ProtocolError:
        return "—"


def _price(entry: dict | None) -> str:
    return f"¥{format_fen(entry['price_fen'])}" if entry and isinstance(entry.get("price_fen"), int) else "—"


def changed_lines(version: dict, w: dict) -> list[str]:
    """A version's before/after (the audit log's) as short sentences: which product or price, from what to what."""
    before, after = version.get("before") or {}, version.get("after") or {}
    lines = []
    for part in ("products", "prices"):
        was, now = before.get(part) or {}, after.get(part) or {}
        for key in sorted(set(was) | set(now)):
            old, new = was.get(key), now.get(key)
            some = new or old or {}
            if part == "products":
                what = f"{key} {some.get('name', '')}"
            else:
                at = some.get("effective_ms") or 0
                when = f" {w['catalogue.from']} {i18n.local_time(at)}" if at else ""
                what = f"{some.get('sku', '')} @ {some.get('store_id') or w['catalogue.chain']}{when}"
            if old is None:
                lines.append(f"{what}: {w['catalogue.added']} {_price(new)}")
            elif new is None:
                lines.append(f"{what}: {w['catalogue.removed']} ({_price(old)})")
            else:
                lines.append(f"{what}: {_price(old)} → {_price(new)}")
    return lines or [version.get("action", "")]


TEMPLATES.env.filters.update(china_time=china_time, changed_lines=changed_lines)


def _matches(product, q: str, category: str) -> bool:
    if category and product.category != category:
        return False
    q = q.strip().lower()
    return not q or any(q in s.lower() for s in (product.sku, product.name, product.plu, product.gtin))


def routes(services) -> list[tuple]:
    def reads() -> Prices:  # made when a page is read: the services are complete by then
        return Prices(services.cloud, _NoWrites())

    async def listing(request):
        operator = await office_operator(request, services, "views.read")
        cloud = services.cloud
        w = i18n.words(lang_of(request))
        q, category = request.query_params.get("q", "")[:40], request.query_params.get("category", "")[:40]
        catalogue = cloud.world.catalogue.at(cloud.now_ms(), "")  # the chain's prices in force now
        found = sorted((p for p in catalogue.by_sku.values() if _matches(p, q, category)), key=lambda p: p.sku)
        entries: dict[str, int] = {}
        for e in cloud.world.catalogue.prices:
            entries[e.sku] = entries.get(e.sku, 0) + 1
        history = await reads().versions(HISTORY_SHOWN)
        return office_page(request, services, "catalogue.html", {
            "products": found[:LIST_MAX], "more": max(0, len(found) - LIST_MAX), "q": q, "category": category,
            "categories": sorted(catalogue.categories), "entries": entries, "history": history["versions"]},
            title=w["catalogue.title"], operator=operator)

    async def product(request):
        operator = await office_operator(request, services, "views.read")
        w = i18n.words(lang_of(request))
        cloud, sku = services.cloud, request.path_params["sku"]
        if not SKU_RE.match(sku):
            return office_page(request, services, "refused.html", {"why": w["catalogue.bad_sku"]}, status=404,
                               title=w["catalogue.title"], operator=operator)
        try:
            book = reads().prices_of(sku)
        except Refusal:
            book = None  # a new product: the form starts empty
        history = await reads().versions(HISTORY_SHOWN, sku=sku)
        stores = sorted(cloud.world.stores.values(), key=lambda s: s.store_id)
        return office_page(request, services, "catalogue_product.html", {
            "sku": sku, "book": book, "p": book["product"] if book else None, "stores": stores,
            "categories": sorted(cloud.world.catalogue.categories), "history": history["versions"]},
            title=f"{w['catalogue.product']} {sku}", operator=operator)

    return [("/office/catalogue", listing, ["GET"]), ("/office/catalogue/{sku}", product, ["GET"])]
