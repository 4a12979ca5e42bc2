"""The price book: per-store price overrides and scheduled price changes, over the chain's catalogue prices.

A catalogue product's own `price_fen` and `member_prices` are the chain price: the default everywhere. A price
entry (`PriceEntry`) sets, from `effective_ms` on (0: from the moment it was set), either the chain's price
(`store_id` "") or one store's own price for one SKU, optionally with its own member-level prices.

Which price is in force for (SKU, store, moment) — `in_force`, pure, the moment passed in:
- the store's newest entry already in force (largest `effective_ms` <= the moment) wins, whatever the chain does
  later: a store's override stands until it is removed;
- else the chain's newest entry in force, else the product's own price;
- member-level prices: the winning entry's own, when it names any; else the chain's member prices in force that
  not above the winning price (a store that raises its price keeps its members' cheaper prices; one that lowers it
  below a member price leaves that level at the store's price, never above it).

The till (edge), the mall and online orders (cloud) and the label scales all price through `Catalogue.at`, which
gives the catalogue as it stands at a store at a moment; the evaluator calls it first (protocol.pricing.evaluator),
so every caller that passes its store and moment in the PricingContext prices by this book.

Wire: the catalogue payload a store receives stays the plain list of products when no entry concerns the store (so
a box with older software, or an older stored catalogue, still reads it); otherwise it is a map
`{"products": [...], "prices": [entries], "store_id": "S001"}` cut for that store (`Catalogue.payload_for`).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from protocol.errors import ProtocolError
from protocol.messages import SKU_RE, valid_store_id
from protocol.pricing.catalogue import LEVEL_RE, LevelPrice, Product
from protocol.schema import record, record_from_wire, require, to_wire

CHANGE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
PRICE_ENTRIES_MAX = 100_000  # a whole chain's overrides and schedule: 500 stores x 200 SKUs
PRICE_FEN_MAX = 100_000_000  # a million yuan per piece or kg: anything above is a typing error


@record
class PriceEntry:
    change_id: str
    sku: str
    price_fen: int
    store_id: str = ""  # "" the chain's price, else that store's own
    member_prices: tuple[LevelPrice, ...] = ()  # () keep the chain's member prices (those below this price)
    effective_ms: int = 0  # in force from this moment (epoch ms); 0: from when it was set

    def __post_init__(self) -> None:
        where = f"price change {self.change_id!r} of {self.sku!r}"
        require(bool(CHANGE_ID_RE.match(self.change_id)), f"price change {self.change_id!r}: invalid change_id")
        require(bool(SKU_RE.match(self.sku)), f"{where}: invalid sku")
        require(self.store_id == "" or valid_store_id(self.store_id), f"{where}: invalid store_id {self.store_id!r}")
        require(0 < self.price_fen <= PRICE_FEN_MAX, f"{where}: price_fen must be 1..{PRICE_FEN_MAX}")
        require(self.effective_ms >= 0, f"{where}: effective_ms must not be negative")
        levels = [lp.level for lp in self.member_prices]
        require(len(set(levels)) == len(levels), f"{where}: a member level is priced twice")
        for lp in self.member_prices:
            require(bool(LEVEL_RE.match(lp.level)), f"{where}: invalid member level {lp.level!r}")
            require(0 < lp.price_fen <= self.price_fen,
                    f"{where}: member price for {lp.level} must be in (0, price_fen {self.price_fen}]")

    @property
    def key(self) -> tuple[str, str, int]:
        return self.sku, self.store_id, self.effective_ms


def entries_from_data(items: Any, known_skus: frozenset[str] | set[str] | None = None) -> tuple[PriceEntry, ...]:
    """Entries from their wire form, checked: ids unique, one entry per (sku, store, moment), SKUs known."""
    if not isinstance(items, list):
        raise ProtocolError("prices: expected a list of price entries")
    if len(items) > PRICE_ENTRIES_MAX:
        raise ProtocolError(f"prices: {len(items)} entries exceed {PRICE_ENTRIES_MAX}")
    entries = tuple(record_from_wire(PriceEntry, item, f"prices[{i}]") for i, item in enumerate(items))
    ids: set[str] = set()
    keys: dict[tuple[str, str, int], str] = {}
    for e in entries:
        if e.change_id in ids:
            raise ProtocolError(f"prices: change_id {e.change_id!r} appears twice")
        ids.add(e.change_id)
        if e.key in keys:
            raise ProtocolError(f"prices: {e.change_id!r} and {keys[e.key]!r} both price {e.sku} at "
                                f"{e.store_id or 'the chain'} from {e.effective_ms}")
        keys[e.key] = e.change_id
        if known_skus is not None and e.sku not in known_skus:
            raise ProtocolError(f"price change {e.change_id!r}: unknown product {e.sku!r}")
    return entries


def entries_to_data(entries: tuple[PriceEntry, ...] | list[PriceEntry]) -> list[dict[str, Any]]:
    return [to_wire(e) for e in entries]


def _newest(entries: list[PriceEntry], at_ms: int) -> PriceEntry | None:
    live = [e for e in entries if e.effective_ms <= at_ms]
    return max(live, key=lambda e: e.effective_ms) if live else None


def in_force(product: Product, entries: list[PriceEntry], store_id: str, at_ms: int) -> tuple[int, tuple[LevelPrice, ...]]:
    """(price_fen, member prices) of `product` at `store_id` at `at_ms`, by the rules of the module docstring;
    `entries`: this product's entries (others are ignored)."""
    mine = [e for e in entries if e.sku == product.sku]
    chain = _newest([e for e in mine if e.store_id == ""], at_ms)
    chain_price = chain.price_fen if chain is not None else product.price_fen
    chain_members = chain.member_prices if chain is not None and chain.member_prices else product.member_prices
    store = _newest([e for e in mine if store_id and e.store_id == store_id], at_ms)
    price = store.price_fen if store is not None else chain_price
    if store is not None and store.member_prices:
        return price, store.member_prices
    return price, tuple(lp for lp in chain_members if lp.price_fen <= price)


def next_change_ms(entries: list[PriceEntry] | tuple[PriceEntry, ...], store_id: str, at_ms: int) -> int | None:
    """The next moment after `at_ms` at which a price at `store_id` changes (None: none scheduled)."""
    later = [e.effective_ms for e in entries if e.effective_ms > at_ms and e.store_id in ("", store_id)]
    return min(later) if later else None


def resolve(product: Product, entries: list[PriceEntry], store_id: str, at_ms: int) -> Product:
    """The product as sold at `store_id` at `at_ms` (itself when nothing changes its price)."""
    price, members = in_force(product, entries, store_id, at_ms)
    if price == product.price_fen and members == product.member_prices:
        return product
    return dataclasses.replace(product, price_fen=price, member_prices=members)


def for_store(entries: tuple[PriceEntry, ...], store_id: str) -> tuple[PriceEntry, ...]:
    """The entries a store needs: the chain's and its own (never another store's prices)."""
    return tuple(e for e in entries if e.store_id in ("", store_id))


def prune(entries: tuple[PriceEntry, ...], now_ms: int) -> tuple[PriceEntry, ...]:
    """Entries that can still matter at `now_ms` or later: of each (sku, store) only the newest in force and those
    still to come (an older one in force can never win again)."""
    newest: dict[tuple[str, str], int] = {}
    for e in entries:
        if e.effective_ms <= now_ms:
            newest[(e.sku, e.store_id)] = max(newest.get((e.sku, e.store_id), -1), e.effective_ms)
    return tuple(e for e in entries if e.effective_ms > now_ms or newest[(e.sku, e.store_id)] == e.effective_ms)


def chain_price_set_now(entries: tuple[PriceEntry, ...], skus: set[str] | frozenset[str],
                        now_ms: int) -> tuple[PriceEntry, ...]:
    """The entries once HQ sets the chain price of `skus` from now (the product's own price): the chain's entries of
    those SKUs already in force are dropped, or the newest of them would keep winning over the price just set; the
    chain's scheduled (future) entries and the stores' own stay."""
    return tuple(e for e in entries if not (e.store_id == "" and e.sku in skus and e.effective_ms <= now_ms))
