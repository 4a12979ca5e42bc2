"""Restock in the cloud (issue 16 item 7): HQ's reorder points per store and SKU, their defaults from sales
velocity, and the operators' view of the stores' open restock alerts with a suggested order per supplier.

Guarantees:
- Only an hq_admin sets points (`protocol.roles`: "restock.change"); each PUT is validated whole before anything is
  written (a bad item names itself and nothing changes), then every point is written with its audit entry (who,
  before, after) in one PostgreSQL transaction, under a version that grows per (store, sku). An item naming only
  its sku adopts the default below as HQ's point (so the store watches it too).
- The store is told by a cloud message (`ReorderPointsSet`) with every point it has and their versions, under an
  event id derived from that content: it applies it once and keeps only newer versions, so a message re-sent at
  the cloud's start (`resend`) or arriving late never undoes a newer setting.
- Defaults (shown where HQ set none; not sent to the store) follow `protocol.restock.default_point` from the units
  the store sold over the last `VELOCITY_WINDOW_DAYS` days: its till sales' lines and its part of online orders that
  were paid (or went further), by `created_ms`.
- The suggested order is what the stores' own open alerts ask for: target - projected (the on-hand the store reported
  last, less what it owed online when it raised the alert, plus what other stores are sending it by an open
  transfer), rounded up to whole supplier packs (`Product.pack_size`), grouped by the product's supplier and valued
  at its standard cost; the cloud adds nothing the stores did not raise.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

from cloud.messaging import to_stores
from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle
from protocol import restock as rules
from protocol.clock import to_rfc3339
from protocol.ids import derived_id
from protocol.messages import SKU_RE
from protocol.restock_messages import ReorderPoint, ReorderPointsSet

log = logging.getLogger("freshmesh.restock")
DAY_MS = 86_400_000
LEAD_DAYS_ENV = "FRESHMESH_SUPPLIER_LEAD_DAYS"  # "<supplier>=<days>,...,*=<days>": suppliers' lead times
ALERTS_VIEWED_MAX = 1_000

SOLD_SQL = """
select sku, sum(qty)::bigint as sold from (
    select l->>0 as sku, (l->>1)::bigint as qty from till_sales t, jsonb_array_elements(t.lines) l
     where t.store_id = $1 and t.wall_ms >= $2
    union all
    select l->>'sku', (l->>'qty')::bigint from orders o, jsonb_array_elements(o.allocation->$1) l
     where o.created_ms >= $2 and o.status = any($3::text[]) and jsonb_typeof(o.allocation->$1) = 'array'
) s group by sku"""


def lead_days_config() -> dict[str, int]:
    try:
        return rules.parse_lead_days(os.environ.get(LEAD_DAYS_ENV, ""))
    except ValueError as exc:
        log.warning("%s ignored: %s", LEAD_DAYS_ENV, exc)
        return {}


def _supplier(product) -> str:
    return product.supplier if product is not None else ""


class Restock:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.lead_days = lead_days_config()

    def _store(self, store_id: str) -> None:
        if store_id not in self.cloud.world.stores:
            raise Refusal("not_found", f"no store {store_id}")

    def _parse(self, body: Any) -> list[tuple[str, int, int] | str]:
        """Each item as (sku, point, target), or its sku alone when it asks for the velocity default."""
        catalogue = self.cloud.world.catalogue
        if not isinstance(body, dict) or set(body) != {"items"} or not isinstance(body["items"], list):
            raise Refusal("invalid", 'the body is {"items": [{"sku", "reorder_point", "target"}, ...]} and nothing else')
        items = body["items"]
        if not 0 < len(items) <= rules.ITEMS_MAX:
            raise Refusal("invalid", f"items: 1..{rules.ITEMS_MAX} points")
        out: list[tuple[str, int, int] | str] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            path = f"items[{i}]"
            if not isinstance(item, dict) or set(item) not in ({"sku"}, {"sku", "reorder_point", "target"}):
                raise Refusal("invalid", f"{path}: sku, with reorder_point and target (or neither: the default from "
                                         "the store's sales velocity)")
            sku = item["sku"]
            if not isinstance(sku, str) or not SKU_RE.match(sku) or sku not in catalogue:
                raise Refusal("invalid", f"{path}.sku: unknown product {str(sku)[:40]!r}")
            if sku in seen:
                raise Refusal("invalid", f"{path}.sku: {sku} is named twice")
            seen.add(sku)
            if len(item) == 1:
                out.append(sku)
                continue
            why = rules.check_point(item["reorder_point"], item["target"], path)
            if why:
                raise Refusal("invalid", why)
            out.append((sku, item["reorder_point"], item["target"]))
        return out

    async def _points(self, store_id: str, parsed: list[tuple[str, int, int] | str]) -> list[rules.Point]:
        """The items' points, an item naming only its sku taking the default from the store's sales velocity."""
        sold = await self.sold(store_id) if any(isinstance(p, str) for p in parsed) else {}
        out = []
        for p in parsed:
            if isinstance(p, str):
                product = self.cloud.world.catalogue.by_sku[p]
                p = (p, *rules.default_point(sold.get(p, 0), rules.lead_days_of(product.supplier, self.lead_days)))
            out.append(rules.Point(*p))
        return out

    async def set_points(self, store_id: str, body: Any, by: Operator) -> dict[str, Any]:
        self._store(store_id)
        points = await self._points(store_id, self._parse(body))
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            for p in points:
                before = await conn.fetchrow("select reorder_point, target, version from reorder_points "
                                             "where store_id = $1 and sku = $2 for update", store_id, p.sku)
                row = await conn.fetchrow(
                    """insert into reorder_points (store_id, sku, reorder_point, target, version, updated_ms, updated_by)
                       values ($1, $2, $3, $4, 1, $5, $6)
                       on conflict (store_id, sku) do update set reorder_point = excluded.reorder_point,
                           target = excluded.target, version = reorder_points.version + 1,
                           updated_ms = excluded.updated_ms, updated_by = excluded.updated_by
                       returning version""", store_id, p.sku, p.reorder_point, p.target, now, by.username)
                await record(conn, now, by, "restock.points", f"{store_id}/{p.sku}",
                             None if before is None else dict(before),
                             {"reorder_point": p.reorder_point, "target": p.target, "version": row["version"]})
        told = await self.tell(store_id)
        return {**await self.view(store_id), "store_told": told}

    async def tell(self, store_id: str) -> bool:
        """The store is sent every point it has (applied once there); False if NATS failed (`resend` tells it)."""
        rows = await self.cloud.db.fetch("select sku, reorder_point, target, version from reorder_points "
                                         "where store_id = $1 order by sku", store_id)
        if not rows:
            return True
        points = tuple(ReorderPoint(sku=r["sku"], reorder_point=r["reorder_point"], target=r["target"],
                                    version=r["version"]) for r in rows)
        digest = hashlib.blake2b(json.dumps([[p.sku, p.version] for p in points]).encode(), digest_size=8).hexdigest()
        ok = True
        for i in range(0, len(points), rules.ITEMS_MAX):
            part = points[i:i + rules.ITEMS_MAX]
            # the id is the content's: the same points again are dropped at the store, new versions are not
            event_id = derived_id(_base_id(store_id), f"{digest}:{i}")
            try:
                await to_stores.send(self.cloud, store_id, lambda part=part, **env: ReorderPointsSet(points=part, **env),
                                     event_id=event_id)
            except Exception as exc:  # noqa: BLE001 - kept in PostgreSQL: told again at the next start
                log.warning("reorder points of %s not sent to the store now: %s", store_id, exc)
                ok = False
        return ok

    async def resend(self) -> None:
        for store_id in {r["store_id"] for r in await self.cloud.db.fetch("select distinct store_id from reorder_points")}:
            if store_id in self.cloud.world.stores:
                await self.tell(store_id)

    async def sold(self, store_id: str) -> dict[str, int]:
        since = self.cloud.now_ms() - rules.VELOCITY_WINDOW_DAYS * DAY_MS
        rows = await self.cloud.db.fetch(SOLD_SQL, store_id, since, list(lifecycle.PAID_STATUSES))
        return {r["sku"]: int(r["sold"]) for r in rows if r["sku"]}

    async def view(self, store_id: str) -> dict[str, Any]:
        """Every SKU with a point set by HQ or a default from its velocity (`source` says which)."""
        self._store(store_id)
        catalogue = self.cloud.world.catalogue
        set_rows = {r["sku"]: r for r in await self.cloud.db.fetch(
            "select * from reorder_points where store_id = $1", store_id)}
        sold = await self.sold(store_id)
        items = []
        for sku in sorted(set(set_rows) | set(sold)):
            product = catalogue.by_sku.get(sku)
            if product is None:
                continue
            lead = rules.lead_days_of(_supplier(product), self.lead_days)
            point, target = rules.default_point(sold.get(sku, 0), lead)
            item = {"sku": sku, "name": product.name, "supplier": _supplier(product),
                    "sold_7d": sold.get(sku, 0), "velocity_per_day": rules.velocity_per_day(sold.get(sku, 0)),
                    "lead_days": lead, "default": {"reorder_point": point, "target": target}}
            row = set_rows.get(sku)
            if row is not None:
                item.update(source="hq", reorder_point=row["reorder_point"], target=row["target"],
                            version=row["version"], updated_at=to_rfc3339(row["updated_ms"]),
                            updated_by=row["updated_by"])
            else:
                item.update(source="default", reorder_point=point, target=target, version=0)
            items.append(item)
        return {"store_id": store_id, "window_days": rules.VELOCITY_WINDOW_DAYS,
                "cover_days": rules.DEFAULT_COVER_DAYS, "items": items}

    async def operator_view(self, store_id: str | None) -> dict[str, Any]:
        """Open alerts (of one store, or all) and the suggested order per supplier."""
        if store_id is not None:
            self._store(store_id)
        # on hand as the store reported it last (its movements since the alert count), less what it owed then
        rows = await self.cloud.db.fetch(
            "select a.*, coalesce(s.on_hand, a.on_hand) as on_hand_now from restock_alerts a left join store_stock s "
            "using (store_id, sku) where a.cleared_ms is null and ($1::text is null or a.store_id = $1) "
            "order by a.raised_ms, a.alert_id limit $2", store_id, ALERTS_VIEWED_MAX)
        catalogue = self.cloud.world.catalogue
        coming = {(r["to_store"], r["sku"]): int(r["qty"]) for r in await self.cloud.db.fetch(INCOMING_SQL)}
        alerts, lines = [], []
        for r in rows:
            product = catalogue.by_sku.get(r["sku"])
            supplier = _supplier(product)
            pack = product.pack_size if product is not None else 0
            projected = r["on_hand_now"] - r["owed"]
            incoming = coming.get((r["store_id"], r["sku"]), 0)  # another store sends it: the supplier, the rest
            qty = rules.suggested_qty(r["target"], projected + incoming, pack)
            cost = product.cost_fen if product is not None else 0
            weighed = bool(product and product.weighed)
            if qty > 0:  # a transfer that covers it all leaves the supplier nothing to send
                lines.append(rules.OrderLine(r["store_id"], r["sku"], supplier, qty,
                                             rules.value_at_cost(qty, cost, weighed)))
            alerts.append({"alert_id": r["alert_id"], "store_id": r["store_id"], "sku": r["sku"],
                           "name": product.name if product else r["sku"], "supplier": supplier,
                           "on_hand": r["on_hand_now"], "on_hand_at_alert": r["on_hand"], "owed": r["owed"],
                           "projected": projected, "incoming_transfers": incoming,
                           "reorder_point": r["reorder_point"], "target": r["target"],
                           "suggested_qty": qty, **_packs(qty, pack), "raised_at": to_rfc3339(r["raised_ms"])})
        orders = [{"supplier": supplier, "lines": [{"store_id": x.store_id, "sku": x.sku, "qty": x.qty,
                                                    "unit": "g" if catalogue.by_sku[x.sku].weighed else "piece",
                                                    **_packs(x.qty, catalogue.by_sku[x.sku].pack_size),
                                                    "value_fen": x.value_fen} for x in part],
                   "value_fen": sum(x.value_fen for x in part)}
                  for supplier, part in rules.by_supplier(lines).items()]
        return {"store_id": store_id, "alerts": alerts, "suggested_orders": orders}


# What other stores are sending a store, per SKU: asked (the requested lines) or on the way (the dispatched ones)
INCOMING_SQL = """
    select t.to_store, x->>'sku' as sku, sum((x->>'qty')::bigint) as qty from transfers t,
        jsonb_array_elements(case when t.status = 'dispatched' then t.dispatched else t.lines end) x
    where t.status in ('requested', 'dispatched') group by 1, 2"""


def _packs(qty: int, pack: int) -> dict[str, int | None]:
    """How a supplier is asked: whole packs of `pack` units (None, None: the product has no pack, units only)."""
    if pack <= 1:
        return {"pack_size": None, "packs": None}
    return {"pack_size": pack, "packs": -(-qty // pack)}  # qty is whole packs already (suggested_qty rounds up)


def _base_id(store_id: str) -> str:
    """A fixed parent id per store for the content-derived ids of its reorder-point messages."""
    return derived_id("00000000000000000000000000", f"restock-points:{store_id}")
