"""The catalogue: what a SKU is, how it is sold (by the piece or by the kg) and its prices.

Prices are fen per piece, or fen per kg for weighed items; member levels may have their own price.
Lookups by SKU, by GTIN (packed goods) and by PLU (the item code a label scale prints into a barcode).
"""
from __future__ import annotations

import re
from typing import Any, Literal

from protocol.errors import ProtocolError
from protocol.messages import SKU_RE
from protocol.schema import record, record_from_wire, require
from protocol.stalls import STALL_RE

Channel = Literal["offline", "online"]
Unit = Literal["piece", "kg"]
CHANNELS: tuple[Channel, ...] = ("offline", "online")
LEVEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
PACK_SIZE_MAX = 1_000_000  # a supplier's pack: up to a tonne in grams, or a million pieces


@record
class LevelPrice:
    level: str
    price_fen: int


@record
class Product:
    sku: str
    name: str
    category: str
    unit: Unit
    price_fen: int  # per piece, or per kg when unit == "kg"
    member_prices: tuple[LevelPrice, ...] = ()
    channels: tuple[Channel, ...] = CHANNELS
    plu: str = ""  # label-scale item code, for variable-measure barcodes
    gtin: str = ""  # for packed goods
    # catch weight: how far (basis points of the ordered weight) a picked weight may differ from what was ordered;
    # the order is re-priced on the picked weight, so this is also the customer's pre-authorised margin
    catch_weight_tolerance_bp: int = 1000
    supplier: str = ""  # who the stores order it from ("" not ordered: made in store, or no supplier on record)
    cost_fen: int = 0  # standard unit cost, in price_fen's unit (per kg or per piece); a lot's own cost wins
    shelf_life_days: int = 0  # days from receiving to use-by when a delivery names none (0: keeps, no use-by)
    # the supplier's pack in the stock unit (pieces, or grams of a product sold by the kg): a suggested order is
    # rounded up to whole packs (protocol.restock.suggested_qty); 0 = no pack, any quantity is ordered
    pack_size: int = 0
    stall: str = ""  # the market stall it belongs to (protocol/stalls.py); "" = the store's own (left off the wire)

    def __post_init__(self) -> None:
        where = f"product {self.sku!r}"
        require(bool(SKU_RE.match(self.sku)), f"{where}: invalid sku")
        require(self.price_fen > 0, f"{where}: price_fen must be positive")
        require(bool(self.category), f"{where}: category is required")
        require(len(set(self.channels)) == len(self.channels) and len(self.channels) > 0,
                f"{where}: channels must be distinct, non-empty")
        for lp in self.member_prices:
            require(bool(LEVEL_RE.match(lp.level)), f"{where}: invalid member level {lp.level!r}")
            require(0 < lp.price_fen <= self.price_fen, f"{where}: member price for {lp.level} must be in (0, list price]")
        require(self.plu == "" or self.plu.isdigit(), f"{where}: plu must be digits")
        require(0 <= self.catch_weight_tolerance_bp <= 5000, f"{where}: catch_weight_tolerance_bp must be 0..5000")
        require(self.gtin == "" or (self.gtin.isdigit() and len(self.gtin) in (8, 13)),
                f"{where}: gtin must be 8 or 13 digits")
        require(len(self.supplier) <= 64, f"{where}: supplier: at most 64 characters")
        require(0 <= self.cost_fen <= 100_000_000, f"{where}: cost_fen must be 0..100000000")
        require(0 <= self.shelf_life_days <= 3650, f"{where}: shelf_life_days must be 0..3650")
        require(0 <= self.pack_size <= PACK_SIZE_MAX, f"{where}: pack_size must be 0..{PACK_SIZE_MAX} (pieces, or grams "
                                                      "if sold by the kg)")
        require(self.stall == "" or bool(STALL_RE.match(self.stall)), f"{where}: invalid stall {self.stall!r}")

    @property
    def weighed(self) -> bool:
        return self.unit == "kg"

    def price_for(self, level: str | None) -> int:
        """List price, or the member level's own price when it has one."""
        if level:
            for lp in self.member_prices:
                if lp.level == level:
                    return lp.price_fen
        return self.price_fen


class Catalogue:
    """`prices`: the price book over the chain prices (protocol.pricing.price_book); `store_id`: the store a box's
    copy was cut for (None: the whole chain's, in the cloud)."""

    def __init__(self, products: list[Product] | tuple[Product, ...], prices: tuple[Any, ...] = (),
                 store_id: str | None = None) -> None:
        self.prices = tuple(prices)
        self.store_id = store_id
        self._at: dict[str, tuple[int, int | None, Catalogue]] = {}  # store -> (valid from, until, resolved)
        self.by_sku: dict[str, Product] = {}
        self.by_gtin: dict[str, Product] = {}
        self.by_plu: dict[str, Product] = {}
        for p in products:
            if p.sku in self.by_sku:
                raise ProtocolError(f"catalogue: sku {p.sku!r} appears twice")
            self.by_sku[p.sku] = p
            for key, index, what in ((p.gtin, self.by_gtin, "gtin"), (p.plu.lstrip("0"), self.by_plu, "plu")):
                if key:
                    if key in index:
                        raise ProtocolError(f"catalogue: {what} {key} used by {index[key].sku} and {p.sku}")
                    index[key] = p
        self.categories = frozenset(p.category for p in products)

    def __len__(self) -> int:
        return len(self.by_sku)

    def __contains__(self, sku: str) -> bool:
        return sku in self.by_sku

    def get(self, sku: str) -> Product:
        try:
            return self.by_sku[sku]
        except KeyError:
            raise ProtocolError(f"unknown product {sku!r}") from None

    def by_item_code(self, code: str) -> Product | None:
        return self.by_plu.get(code.lstrip("0"))

    def at(self, at_ms: int, store_id: str | None = None) -> Catalogue:
        """The catalogue as sold at `store_id` (default: the store this copy was cut for) at `at_ms`: each product
        with the price in force there and then (protocol.pricing.price_book). Itself when no price entry exists;
        kept until the next scheduled change, so pricing a basket does not resolve the whole catalogue each time."""
        if not self.prices:
            return self
        from protocol.pricing import price_book
        store = store_id if store_id is not None else (self.store_id or "")
        cached = self._at.get(store)
        if cached is not None and cached[0] <= at_ms and (cached[1] is None or at_ms < cached[1]):
            return cached[2]
        mine: dict[str, list[Any]] = {}
        for e in self.prices:
            if e.store_id in ("", store):
                mine.setdefault(e.sku, []).append(e)
        resolved = Catalogue([price_book.resolve(p, mine[p.sku], store, at_ms) if p.sku in mine else p
                              for p in self.by_sku.values()], store_id=store or None)
        started = [e.effective_ms for e in self.prices if e.effective_ms <= at_ms and e.store_id in ("", store)]
        self._at[store] = (max(started, default=0), price_book.next_change_ms(self.prices, store, at_ms), resolved)
        return resolved

    @classmethod
    def from_data(cls, items: list[dict[str, Any]] | dict[str, Any]) -> Catalogue:
        """From the plain list of products, or the map {"products", "prices", "store_id"} of a catalogue with a
        price book (protocol.pricing.price_book)."""
        if isinstance(items, dict):
            from protocol.pricing import price_book
            unknown = sorted(set(items) - {"products", "prices", "store_id"})
            if unknown:
                raise ProtocolError(f"catalogue: unknown field(s) {unknown}")
            plain = cls.from_data(items.get("products"))  # type: ignore[arg-type]
            store_id = items.get("store_id")
            if store_id is not None and not isinstance(store_id, str):
                raise ProtocolError("catalogue: store_id must be a string")
            entries = price_book.entries_from_data(items.get("prices", []), frozenset(plain.by_sku))
            return cls(list(plain.by_sku.values()), entries, store_id)
        if not isinstance(items, list):
            raise ProtocolError("catalogue: expected a list of products")
        return cls([record_from_wire(Product, item, f"product[{i}]") for i, item in enumerate(items)])

    def payload_for(self, store_id: str) -> list[dict[str, Any]] | dict[str, Any]:
        """What a store is sent: the plain product list when no price entry concerns it (older boxes read it), else
        the map with the chain's entries and its own (never another store's)."""
        from protocol.pricing import price_book
        entries = price_book.for_store(self.prices, store_id)
        if not entries:
            return self.to_data()
        return {"products": self.to_data(), "prices": price_book.entries_to_data(entries), "store_id": store_id}

    def to_data(self) -> list[dict[str, Any]]:
        from protocol.schema import to_wire
        # a product of no stall travels without the field, as before stalls: boxes not yet upgraded still read it
        return [_without_empty_stall(to_wire(p)) for p in self.by_sku.values()]

    def stall_of(self) -> dict[str, str]:
        """sku -> its stall, for the stalls' products only (protocol/stalls.py: missing = the store's own)."""
        return {p.sku: p.stall for p in self.by_sku.values() if p.stall}


def _without_empty_stall(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("stall") == "":
        del data["stall"]
    return data

