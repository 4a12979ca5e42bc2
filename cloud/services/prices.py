"""HQ's catalogue and prices: one product at a time, per-store overrides, scheduled price changes, their history.

Guarantees:
- Every change goes through `WorldAdmin.change` (cloud/services/world_admin.py): validated whole, stored as a new
  world version, recorded in the operator audit log with what it changed (before and after, in the same
  transaction), and sent to every store with the catalogue (each store gets the chain's entries and its own only:
  protocol.pricing.price_book). A bad request changes nothing and its refusal names the product (and store).
- Idempotent: a PUT sets the same state again; a scheduled change carries its `change_id` (made by the caller, or
  here when omitted): sending the same change again answers "exists" with 200, a different one under the same id
  is refused (409).
- Changes made in this process are applied one at a time (a lock), so two operators' price changes never undo
  each other here; the world's version row in PostgreSQL is the one authority other processes follow.
- Entries that can never be in force again are dropped as changes are made (`price_book.prune`).
"""
from __future__ import annotations

import json
from typing import Any

from cloud.services.operators import Operator
from cloud.services.verdicts import Refusal
from protocol.clock import parse_rfc3339, to_rfc3339
from protocol.errors import ProtocolError
from protocol.messages import valid_store_id
from protocol.pricing import price_book
from protocol.pricing.catalogue import Product
from protocol.pricing.price_book import CHANGE_ID_RE, PriceEntry
from protocol.schema import record_from_wire, to_wire

VERSIONS_PAGE_MAX = 200
ACTIONS = ("catalogue.change", "prices.change")  # the audit log's entries of the catalogue and its prices


def member_prices_of(value: Any, where: str) -> list[dict[str, Any]]:
    """Member-level prices as a list of {level, price_fen}; a map {level: fen} is accepted too."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"level": k, "price_fen": v} for k, v in value.items()]
    if isinstance(value, list):
        return value
    raise Refusal("invalid", f"{where}: member_prices: a list of {{level, price_fen}} or a map level -> fen")


def entry_json(e: PriceEntry) -> dict[str, Any]:
    return {**to_wire(e), "effective_at": to_rfc3339(e.effective_ms) if e.effective_ms else None}


class Prices:
    def __init__(self, cloud, world_admin) -> None:
        self.cloud, self.world_admin = cloud, world_admin

    def editing(self):
        """The world admin's: a change is built from the newest world read under it, stored before it is let go."""
        return self.world_admin.editing()

    def _product(self, sku: str) -> Product:
        product = self.cloud.world.catalogue.by_sku.get(sku)
        if product is None:
            raise Refusal("not_found", f"product {sku!r}: no such product in the catalogue")
        return product

    def _store(self, store_id: str, sku: str) -> None:
        if not valid_store_id(store_id) or store_id not in self.cloud.world.stores:
            raise Refusal("not_found", f"product {sku!r}: store {store_id!r} is not one of the chain's stores")

    async def put_product(self, sku: str, body: dict[str, Any], by: Operator) -> dict[str, Any]:
        """Adds or replaces one product (its chain price and member prices included)."""
        if body.get("sku", sku) != sku:
            raise Refusal("invalid", f"product {sku!r}: the body's sku {body.get('sku')!r} is not the path's")
        try:
            product = record_from_wire(Product, {**body, "sku": sku}, f"product {sku!r}")
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        async with self.world_admin.editing():
            items = self.cloud.world.catalogue.to_data()
            created = all(item["sku"] != sku for item in items)
            new = [to_wire(product) if item["sku"] == sku else item for item in items]
            if created:
                new.append(to_wire(product))
            answer = await self.world_admin.change("catalogue", new, f"product {sku}", by=by, locked=True,
                                                   prices=self.chain_set_now({sku}))
        return {**answer, "sku": sku, "created": created, "product": to_wire(product)}

    def chain_set_now(self, skus: set[str]) -> list[dict[str, Any]]:
        """The price entries once the chain price of `skus` is set from now (the chain's entries in force end)."""
        return price_book.entries_to_data(price_book.chain_price_set_now(self.cloud.world.catalogue.prices, skus,
                                                                         self.cloud.now_ms()))

    def _entry(self, sku: str, body: dict[str, Any], store_id: str, effective_ms: int) -> PriceEntry:
        where = f"product {sku!r}" + (f" at store {store_id}" if store_id else "")
        change_id = body.get("change_id") or f"pc-{self.cloud.ids.new()}"
        if not isinstance(change_id, str) or not CHANGE_ID_RE.match(change_id):
            raise Refusal("invalid", f"{where}: change_id: 1-64 letters, digits, '_.:-'")
        wire = {"change_id": change_id, "sku": sku, "store_id": store_id, "effective_ms": effective_ms,
                "price_fen": body.get("price_fen"), "member_prices": member_prices_of(body.get("member_prices"), where)}
        try:
            return record_from_wire(PriceEntry, wire, where)
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None

    async def _write(self, entries: list[PriceEntry], reason: str, by: Operator) -> dict[str, Any]:
        kept = price_book.prune(tuple(entries), self.cloud.now_ms())
        return await self.world_admin.change("prices", price_book.entries_to_data(kept), reason, by=by, locked=True)

    async def set_store_price(self, sku: str, store_id: str, body: dict[str, Any], by: Operator) -> dict[str, Any]:
        """The store's own price from now on (it replaces the store's earlier ones; its scheduled ones stay)."""
        self._product(sku)
        self._store(store_id, sku)
        entry = self._entry(sku, body, store_id, 0)
        async with self.world_admin.editing():
            now = self.cloud.now_ms()
            kept = [e for e in self.cloud.world.catalogue.prices
                    if not (e.sku == sku and e.store_id == store_id and e.effective_ms <= now)]
            answer = await self._write(kept + [entry], f"store price {sku} at {store_id}", by)
        return {**answer, "entry": entry_json(entry)}

    async def drop_store_price(self, sku: str, store_id: str, by: Operator) -> dict[str, Any]:
        """The store goes back to the chain's price: its own entries for the SKU (scheduled ones too) are removed."""
        self._product(sku)
        self._store(store_id, sku)
        async with self.world_admin.editing():
            entries = self.cloud.world.catalogue.prices
            kept = [e for e in entries if not (e.sku == sku and e.store_id == store_id)]
            if len(kept) == len(entries):
                raise Refusal("not_found", f"product {sku!r}: store {store_id} has no price of its own")
            answer = await self._write(kept, f"store price {sku} at {store_id} removed", by)
        return {**answer, "removed": len(entries) - len(kept)}

    async def schedule(self, sku: str, body: dict[str, Any], by: Operator) -> tuple[int, dict[str, Any]]:
        """A price change that takes effect at `effective_at` (chain-wide, or one store's with `store_id`)."""
        self._product(sku)
        store_id = body.get("store_id") or ""
        if store_id:
            self._store(store_id, sku)
        at = body.get("effective_at")
        if not isinstance(at, str):
            raise Refusal("invalid", f"product {sku!r}: effective_at: an RFC 3339 time is required")
        try:
            effective_ms = parse_rfc3339(at, f"product {sku!r}: effective_at")
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        entry = self._entry(sku, body, store_id, effective_ms)
        async with self.world_admin.editing():
            entries = list(self.cloud.world.catalogue.prices)
            same = next((e for e in entries if e.change_id == entry.change_id), None)
            if same is not None:
                if same == entry:
                    return 200, {"status": "exists", "entry": entry_json(same)}
                raise Refusal("exists", f"price change {entry.change_id!r} exists with other values")
            if effective_ms <= self.cloud.now_ms():
                raise Refusal("invalid", f"product {sku!r}: effective_at {at} is not in the future (set the price "
                                         "itself for a change from now)")
            clash = next((e for e in entries if e.key == entry.key), None)
            if clash is not None:
                raise Refusal("exists", f"product {sku!r}: change {clash.change_id!r} already prices it at "
                                        f"{store_id or 'the chain'} from {at}")
            answer = await self._write(entries + [entry], f"price change {sku} from {at}", by)
        return 201, {**answer, "status": "ok", "entry": entry_json(entry)}

    async def cancel(self, sku: str, change_id: str, by: Operator) -> dict[str, Any]:
        async with self.world_admin.editing():
            entries = self.cloud.world.catalogue.prices
            kept = [e for e in entries if not (e.sku == sku and e.change_id == change_id)]
            if len(kept) == len(entries):
                raise Refusal("not_found", f"product {sku!r}: no price change {change_id!r}")
            return await self._write(kept, f"price change {change_id} of {sku} cancelled", by)

    def prices_of(self, sku: str) -> dict[str, Any]:
        """The product's chain price, its entries, and the price in force now at each store where it differs."""
        product = self._product(sku)
        catalogue, now = self.cloud.world.catalogue, self.cloud.now_ms()
        mine = [e for e in catalogue.prices if e.sku == sku]

        def shown(store: str) -> dict[str, Any]:
            fen, members = price_book.in_force(product, mine, store, now)
            return {"price_fen": fen, "member_prices": [to_wire(lp) for lp in members]}

        stores = {s: shown(s) for s in sorted(self.cloud.world.stores)}
        chain = shown("")
        return {"sku": sku, "product": to_wire(product), "chain": chain,
                "entries": [entry_json(e) for e in sorted(mine, key=lambda e: (e.store_id, e.effective_ms))],
                "stores": {s: v for s, v in stores.items() if v != chain}}

    async def versions(self, limit: int = 50, before: int | None = None, sku: str | None = None) -> dict[str, Any]:
        """Who changed the catalogue or its prices, when and what (before/after), newest first; `sku`: only the
        changes that touched that product."""
        limit = max(1, min(limit, VERSIONS_PAGE_MAX))
        rows = await self.cloud.db.fetch(
            "select audit_id, at_ms, username, action, target, before, after from operator_audit "
            "where action = any($1::text[]) and ($2::bigint is null or audit_id < $2) and ($3::text is null or "
            "jsonb_path_exists(coalesce(before, '{}'::jsonb), '$.*.*.sku ? (@ == $s)', jsonb_build_object('s', $3)) or "
            "jsonb_path_exists(coalesce(after, '{}'::jsonb), '$.*.*.sku ? (@ == $s)', jsonb_build_object('s', $3))) "
            "order by audit_id desc limit $4", list(ACTIONS), before, sku, limit)
        return self._page(rows, limit)

    @staticmethod
    def _page(rows, limit: int) -> dict[str, Any]:
        out = [{"audit_id": r["audit_id"], "at": to_rfc3339(r["at_ms"]), "by": r["username"], "action": r["action"],
                "before": json.loads(r["before"]) if r["before"] is not None else None,
                "after": json.loads(r["after"]) if r["after"] is not None else None} for r in rows]
        return {"versions": out, "next_before": out[-1]["audit_id"] if len(out) == limit else None}
