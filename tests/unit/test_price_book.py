"""Per-store prices and scheduled price changes (protocol.pricing.price_book): which price is in force where and
when, how the catalogue carries them to a store, and that the evaluator (till and mall alike) charges them."""
from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError
from protocol.pricing import BasketLine, Catalogue, LevelPrice, PricingContext, Product, load_rule_book, price_basket
from protocol.pricing.price_book import PriceEntry, chain_price_set_now, entries_from_data, in_force, prune

APPLE = Product(sku="PB-APPLE", name="Apple", category="fruit", unit="piece", price_fen=1000,
                member_prices=(LevelPrice(level="gold", price_fen=900),))
PEAR = Product(sku="PB-PEAR", name="Pear", category="fruit", unit="kg", price_fen=2000, plu="4410")
T = 1_800_000_000_000


def entry(cid: str, price: int, store: str = "", at: int = 0, members=(), sku: str = "PB-APPLE") -> PriceEntry:
    return PriceEntry(change_id=cid, sku=sku, price_fen=price, store_id=store, effective_ms=at,
                      member_prices=tuple(LevelPrice(level=lv, price_fen=f) for lv, f in members))


def test_without_entries_the_chain_price_stands_everywhere():
    assert in_force(APPLE, [], "S069", T) == (1000, APPLE.member_prices)
    assert Catalogue([APPLE]).at(T, "S069").get("PB-APPLE") is APPLE


def test_a_store_override_is_that_stores_price_only():
    book = [entry("o1", 1200, "S069")]
    assert in_force(APPLE, book, "S069", T)[0] == 1200
    assert in_force(APPLE, book, "S070", T)[0] == 1000
    assert in_force(APPLE, book, "", T)[0] == 1000


def test_a_store_override_keeps_the_chains_member_prices_below_it_unless_it_names_its_own():
    assert in_force(APPLE, [entry("o1", 1200, "S069")], "S069", T)[1] == (LevelPrice(level="gold", price_fen=900),)
    # lowered below the gold price: gold members pay the store's price, never more than non-members
    assert in_force(APPLE, [entry("o1", 800, "S069")], "S069", T)[1] == ()
    own = in_force(APPLE, [entry("o1", 1200, "S069", members=[("silver", 1100)])], "S069", T)[1]
    assert own == (LevelPrice(level="silver", price_fen=1100),)


def test_a_scheduled_change_takes_effect_at_its_moment_not_before():
    book = [entry("c1", 1500, at=T)]
    assert in_force(APPLE, book, "S069", T - 1)[0] == 1000
    assert in_force(APPLE, book, "S069", T)[0] == 1500


def test_a_store_override_stands_over_a_later_chain_change_and_a_scheduled_override_replaces_it():
    book = [entry("o1", 1200, "S069"), entry("c1", 1500, at=T), entry("o2", 1100, "S069", at=T + 10)]
    assert in_force(APPLE, book, "S069", T + 5)[0] == 1200
    assert in_force(APPLE, book, "S070", T + 5)[0] == 1500
    assert in_force(APPLE, book, "S069", T + 10)[0] == 1100


def test_catalogue_at_resolves_and_refreshes_at_the_next_change():
    cat = Catalogue([APPLE, PEAR], (entry("c1", 1500, at=T), entry("o1", 2500, "S069", sku="PB-PEAR")))
    before, after = cat.at(T - 1, "S069"), cat.at(T, "S069")
    assert before.get("PB-APPLE").price_fen == 1000 and after.get("PB-APPLE").price_fen == 1500
    assert after.get("PB-PEAR").price_fen == 2500 and cat.at(T, "S070").get("PB-PEAR").price_fen == 2000
    assert cat.at(T - 1, "S069").get("PB-APPLE").price_fen == 1000  # time read back: not a stale cached copy


def test_the_evaluator_charges_the_price_in_force_at_the_store_and_moment_of_the_sale():
    cat = Catalogue([APPLE, PEAR], (entry("o1", 1200, "S069"), entry("c1", 1500, at=T)))
    book = load_rule_book({"version": 1, "rules": []}, cat)

    def total(store: str, at: int, level: str | None = None) -> int:
        ctx = PricingContext(channel="offline", store_id=store, now_ms=at, member_level=level)
        return price_basket(cat, book, [BasketLine(sku="PB-APPLE", qty=2), BasketLine(sku="PB-PEAR", weight_g=500)],
                            ctx).total_fen

    assert total("S069", T - 1) == 2 * 1200 + 1000
    assert total("S070", T - 1) == 2 * 1000 + 1000
    assert total("S070", T) == 2 * 1500 + 1000
    assert total("S069", T, "gold") == 2 * 900 + 1000


def test_a_store_gets_only_the_chain_entries_and_its_own_and_reads_them_back():
    cat = Catalogue([APPLE], (entry("o1", 1200, "S069"), entry("o2", 1300, "S070"), entry("c1", 1500, at=T)))
    payload = cat.payload_for("S069")
    assert isinstance(payload, dict) and {e["change_id"] for e in payload["prices"]} == {"o1", "c1"}
    at_store = Catalogue.from_data(json.loads(json.dumps(payload)))
    assert at_store.store_id == "S069" and at_store.at(T - 1).get("PB-APPLE").price_fen == 1200


def test_a_store_no_entry_concerns_gets_the_plain_list_older_boxes_read():
    cat = Catalogue([APPLE], (entry("o1", 1200, "S069"),))
    assert cat.payload_for("S001") == Catalogue([APPLE]).to_data()
    assert Catalogue.from_data(cat.payload_for("S001")).prices == ()


@pytest.mark.parametrize("bad, says", [
    (["PriceEntry"], "expected a map"),
    ([{"change_id": "x", "sku": "PB-APPLE", "price_fen": 0}], "price_fen must be"),
    ([{"change_id": "x", "sku": "PB-NONE", "price_fen": 10}], "unknown product 'PB-NONE'"),
    ([{"change_id": "x", "sku": "PB-APPLE", "price_fen": 10, "store_id": "no where!"}], "invalid store_id"),
    ([{"change_id": "x", "sku": "PB-APPLE", "price_fen": 10, "member_prices": [{"level": "gold", "price_fen": 11}]}],
     "member price for gold"),
    ([{"change_id": "x", "sku": "PB-APPLE", "price_fen": 10}, {"change_id": "x", "sku": "PB-APPLE", "price_fen": 9,
                                                               "effective_ms": 5}], "appears twice"),
    ([{"change_id": "x", "sku": "PB-APPLE", "price_fen": 10}, {"change_id": "y", "sku": "PB-APPLE", "price_fen": 9}],
     "both price PB-APPLE"),
])
def test_bad_entries_are_refused_naming_what_is_wrong(bad, says):
    with pytest.raises(ProtocolError, match=says):
        entries_from_data(bad, frozenset({"PB-APPLE"}))


def test_prune_keeps_what_can_still_win():
    book = (entry("a", 1100, "S069"), entry("b", 1200, "S069", at=T - 5), entry("c", 1300, "S069", at=T + 5),
            entry("d", 1400, at=T - 1))
    assert {e.change_id for e in prune(book, T)} == {"b", "c", "d"}


entries_st = st.lists(st.tuples(st.sampled_from(["", "S069", "S070"]), st.integers(0, 50), st.integers(1, 3000)),
                      max_size=8, unique_by=lambda t: (t[0], t[1]))


@given(entries_st, st.integers(0, 60), st.sampled_from(["S069", "S070", "S071"]))
def test_property_the_price_is_the_stores_newest_in_force_else_the_chains_else_the_list(raw, at, store):
    book = [entry(f"e{i}", price, s, at=t) for i, (s, t, price) in enumerate(raw)]
    price, members = in_force(APPLE, book, store, at)
    own = [e for e in book if e.store_id == store and e.effective_ms <= at]
    chain = [e for e in book if e.store_id == "" and e.effective_ms <= at]
    want = max(own, key=lambda e: e.effective_ms).price_fen if own else (
        max(chain, key=lambda e: e.effective_ms).price_fen if chain else APPLE.price_fen)
    assert price == want
    assert all(lp.price_fen <= price for lp in members)  # a member never pays more than the price
    assert in_force(APPLE, list(prune(tuple(book), at)), store, at) == (price, members)  # pruning changes nothing


def test_a_box_applies_a_catalogue_with_its_prices_and_still_reads_the_plain_list():
    """The box's pure core (edge.core.cloud_messages) takes the map form (products + this store's prices) as it
    took the plain list, and the catalogue it then uses prices by them; a plain list (an older cloud, or the copy a
    box stored before) still works, with chain prices."""
    from edge.core import cloud_messages
    from edge.core.outcome import StoreBook, UseBooks
    from edge.core.state import Books, Moment
    from protocol.ids import make_id
    from protocol.messages import CatalogueUpdated

    plain = Catalogue([APPLE, PEAR])
    books = Books(plain, load_rule_book({"version": 1, "rules": []}, plain), catalogue_version=1, rule_book_version=1)
    with_prices = Catalogue([APPLE, PEAR], (entry("o1", 1200, "S069"), entry("o2", 1300, "S070")))
    now = Moment(wall_ms=T, mono_ms=0)

    def applied(n: int, payload) -> Catalogue:
        message = CatalogueUpdated(event_id=make_id(T, n), store_id="S069", seq=n, wall_ms=T, mono_ms=0, version=n + 1,
                                   payload=json.dumps(payload).encode())
        out = cloud_messages.apply_cloud_message(message, False, books, now)
        assert any(isinstance(e, StoreBook) for e in out.effects), out.notes
        (use,) = out.after
        assert isinstance(use, UseBooks) and use.books.catalogue is not None
        return use.books.catalogue

    at_store = applied(1, with_prices.payload_for("S069"))
    assert at_store.at(T).get("PB-APPLE").price_fen == 1200 and [e.change_id for e in at_store.prices] == ["o1"]
    assert applied(2, plain.to_data()).at(T).get("PB-APPLE").price_fen == 1000


def test_a_chain_price_set_now_ends_the_chain_entries_in_force_not_the_scheduled_or_the_stores():
    """HQ scheduled 22.00 from Monday; on Tuesday it sets 19.90 on the product: 19.90 is charged from then on (the
    in-force scheduled entry would otherwise keep winning); a later scheduled change and a store's own stay."""
    monday, tuesday, friday = T, T + 86_400_000, T + 4 * 86_400_000
    entries = (entry("mon", 2200, at=monday), entry("fri", 2500, at=friday), entry("own", 1500, store="S002"))
    edited = dataclasses.replace(APPLE, price_fen=1990)
    assert in_force(edited, list(entries), "S001", tuesday)[0] == 2200  # the bug: the edit would not be charged
    kept = chain_price_set_now(entries, {"PB-APPLE"}, tuesday)
    assert [e.change_id for e in kept] == ["fri", "own"]
    assert in_force(edited, list(kept), "S001", tuesday)[0] == 1990
    assert in_force(edited, list(kept), "S001", friday)[0] == 2500
    assert in_force(edited, list(kept), "S002", tuesday)[0] == 1500
    assert chain_price_set_now(entries, {"PB-PEAR"}, tuesday) == entries
