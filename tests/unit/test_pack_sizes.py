"""A product's supplier pack (Product.pack_size) and how a suggested order is rounded to it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol import restock as rules
from protocol.errors import ProtocolError
from protocol.pricing.catalogue import PACK_SIZE_MAX, Catalogue, Product
from protocol.schema import record_from_wire

WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
BASE = {"sku": "PAC-RICE-9001", "name": "Rice 5kg", "category": "packed", "unit": "piece", "price_fen": 4990}


def test_no_pack_by_default_and_a_pack_travels_with_the_catalogue():
    assert Product(**BASE).pack_size == 0
    catalogue = Catalogue.from_data([{**BASE, "pack_size": 10}])
    assert Catalogue.from_data(catalogue.to_data()).by_sku["PAC-RICE-9001"].pack_size == 10


@pytest.mark.parametrize("bad", [-1, PACK_SIZE_MAX + 1])
def test_a_pack_out_of_range_is_refused_naming_the_product(bad):
    with pytest.raises(ProtocolError, match="PAC-RICE-9001.*pack_size"):
        record_from_wire(Product, {**BASE, "pack_size": bad}, "product[0]")


def test_the_default_world_orders_some_products_in_packs_pieces_and_grams():
    catalogue = Catalogue.from_data(json.loads(WORLD.read_text())["catalogue"])
    packed = {p.sku: (p.pack_size, p.weighed) for p in catalogue.by_sku.values() if p.pack_size}
    assert packed["PAC-RICE-0201"] == (10, False)
    assert packed["VEG-TOMATO-0009"] == (5_000, True)  # a 5 kg case of a product sold by the kg
    # 16 pieces short is 2 packs of 10; 7.2 kg short is two 5 kg cases
    assert rules.suggested_qty(20, 4, packed["PAC-RICE-0201"][0]) == 20
    assert rules.suggested_qty(10_000, 2_800, packed["VEG-TOMATO-0009"][0]) == 10_000
