"""The till counter's pure helpers (edge/till/counter_routes.py, edge/till/i18n.py): pickup codes as scanners and
customers bring them, masking, the store lists' rows, and jin."""
from __future__ import annotations

import pytest

from edge.core.outcome import Refused
from edge.till.counter_routes import flat, masked, pickup_code
from edge.till.i18n import CATALOGUE, jin, per_jin


@pytest.mark.parametrize("scanned", ["12345678", " 12345678\n", "PICKUP:12345678", "pickup:12345678",
                                     "https://mall.chain.example/orders/O1/pickup?code=12345678",
                                     "https://mall.chain.example/pickup/12345678",
                                     "https://mall.chain.example/p?pickup_code=PICKUP:12345678"])
def test_a_pickup_code_is_found_in_what_was_scanned(scanned):
    assert pickup_code(scanned) == "12345678"


def test_what_is_not_a_pickup_code_is_refused_naming_it():
    with pytest.raises(Refused, match="is a sale code, not a pickup code"):
        pickup_code("SALE:01ABC")
    with pytest.raises(Refused, match="is not a pickup code"):
        pickup_code("12 34")
    with pytest.raises(Refused, match="is not a pickup code"):
        pickup_code("https://mall.chain.example/?code=<script>")


def test_a_customer_is_shown_masked():
    assert masked("138****5678") == "138****5678"  # the cache's masked phone, as it is
    assert masked("M01HZX9ABCDEF") == "M0****EF"
    assert masked("M1") == "****" and masked(None) == ""


def test_a_store_list_row_keeps_plain_fields_and_counts_lists():
    assert flat({"order_id": "O1", "lines": [1, 2], "meta": {"x": 1}, "note": None, "status": "to_pick"}) == [
        ("order_id", "O1"), ("lines", "2"), ("status", "to_pick")]


def test_jin_is_half_a_kilo_and_a_price_per_jin_half_the_price_per_kg():
    assert (jin(1_250), jin(500), jin(1), jin(-250)) == ("2.500", "1.000", "0.002", "-0.500")
    assert (per_jin(1_299), per_jin(1_300), per_jin(1)) == ("6.50", "6.50", "0.01")


def test_both_languages_name_the_counter_words_and_none_shadows_a_dict_method():
    assert CATALOGUE["zh"].keys() == CATALOGUE["en"].keys()
    assert not [k for k in CATALOGUE["zh"] if hasattr(dict, k)]  # `w.clear` in a template would be the method
