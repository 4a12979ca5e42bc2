"""The world the cloud serves: stores, the catalogue and the promotion book, loaded from a JSON file.

`freshmesh cloud --world FILE`; without one, the small default world shipped in cloud/data is used, so that a
fresh `freshmesh cloud` serves real products and stores. Operators change it through their endpoints.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from actors.order_router import UpsertStore
from protocol.errors import ProtocolError
from protocol.messages import valid_store_id
from protocol.pricing import Catalogue, RuleBook, load_rule_book
from protocol.schema import record, record_from_wire, require

DEFAULT_WORLD = "default_world.json"


@record
class Store:
    store_id: str
    name: str
    lat: float
    lon: float
    pickup_radius_m: int = 10_000
    delivery_radius_m: int = 3_000
    opens: str = "07:00"
    closes: str = "22:00"
    slot_minutes: int = 60
    slot_capacity: int = 40
    delivery_fee_fen: int = 500  # a delivery's fee, unless the basket reaches free_delivery_from_fen
    free_delivery_from_fen: int = 3900
    slot_cutoff_min: int = 60  # a delivery slot closes this long before it starts (time to pick, a rider to come)
    open: bool = True  # HQ closed the store (refit, flood): no online orders, never routed to; the till still works

    def __post_init__(self) -> None:
        require(valid_store_id(self.store_id), f"store {self.store_id!r}: invalid id")
        require(-90 <= self.lat <= 90 and -180 <= self.lon <= 180, f"store {self.store_id}: bad location")
        require(self.pickup_radius_m > 0 and self.delivery_radius_m > 0, f"store {self.store_id}: radii must be positive")
        require(self.slot_minutes in (15, 30, 60, 120) and self.slot_capacity > 0, f"store {self.store_id}: bad slots")
        require(self.delivery_fee_fen >= 0 and self.free_delivery_from_fen >= 0,
                f"store {self.store_id}: delivery fee and free-delivery threshold are fen, not negative")
        require(0 <= self.slot_cutoff_min <= 24 * 60, f"store {self.store_id}: slot cut-off of 0-1440 minutes")

    def router_command(self, command_id: str) -> UpsertStore:
        return UpsertStore(id=command_id, store=self.store_id, lat=self.lat, lon=self.lon,
                           pickup_radius_m=self.pickup_radius_m, delivery_radius_m=self.delivery_radius_m,
                           opens=self.opens, closes=self.closes, slot_minutes=self.slot_minutes,
                           slot_capacity=self.slot_capacity, open=self.open)


class World:
    def __init__(self, stores: list[Store], catalogue: Catalogue, rule_book: RuleBook, rule_data: dict) -> None:
        self.stores = {s.store_id: s for s in stores}
        self.catalogue = catalogue
        self.rule_book = rule_book
        self.rule_data = rule_data

    @classmethod
    def from_data(cls, data: dict) -> World:
        if not isinstance(data, dict):
            raise ProtocolError("world: expected a map with stores, catalogue and rule_book")
        unknown = sorted(set(data) - {"stores", "catalogue", "rule_book", "prices"})
        if unknown:
            raise ProtocolError(f"world: unknown field(s) {unknown}")
        stores = [record_from_wire(Store, s, f"stores[{i}]") for i, s in enumerate(data.get("stores", []))]
        catalogue = Catalogue.from_data(data.get("catalogue", []))
        if data.get("prices"):  # per-store overrides and scheduled changes (protocol.pricing.price_book)
            catalogue = Catalogue.from_data({"products": data.get("catalogue", []), "prices": data["prices"]})
            strangers = sorted({e.store_id for e in catalogue.prices if e.store_id} - {s.store_id for s in stores})
            if strangers:
                raise ProtocolError(f"prices: unknown store(s) {strangers}")
        rule_data = data.get("rule_book", {"version": 1, "rules": []})
        return cls(stores, catalogue, load_rule_book(rule_data, catalogue), rule_data)

    @classmethod
    def load(cls, path: str | Path | None = None) -> World:
        text = resources.files("cloud.data").joinpath(DEFAULT_WORLD).read_text() if path is None else Path(path).read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"world file is not JSON: {exc}") from None
        return cls.from_data(data)

    def to_data(self) -> dict:
        from protocol.pricing.price_book import entries_to_data
        from protocol.schema import to_wire
        prices = {"prices": entries_to_data(self.catalogue.prices)} if self.catalogue.prices else {}
        return {"stores": [to_wire(s) for s in self.stores.values()], "catalogue": self.catalogue.to_data(),
                "rule_book": self.rule_data, **prices}

