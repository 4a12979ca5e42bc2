"""A store's shelf areas and a stocktake by area, as pure decisions (edge.core.shelf_areas, edge.core.stocktake):
no event loop, no SQLite."""
from __future__ import annotations

import pytest

from edge.core import shelf_areas, stocktake
from edge.core.outcome import OpenStocktake, Refused, SetShelfAreas
from edge.core.shelf_areas import Manager
from edge.core.state import Books
from edge.stocktake_api import OpenBody
from protocol.errors import ProtocolError
from protocol.ids import make_id
from protocol.pricing import Catalogue, Product, load_rule_book
from protocol.schema import record_from_wire
from protocol.stocktake_messages import scope_text

CATALOGUE = Catalogue([
    Product(sku="BOKCHOY", name="Bok choy", category="vegetables", unit="kg", price_fen=960, cost_fen=600),
    Product(sku="CARROT", name="Carrot", category="vegetables", unit="kg", price_fen=500, cost_fen=300),
    Product(sku="MILK", name="Milk 1L", category="dairy", unit="piece", price_fen=350, cost_fen=200),
    Product(sku="YOGURT", name="Yogurt", category="dairy", unit="piece", price_fen=450, cost_fen=250),
])
BOOKS = Books(CATALOGUE, load_rule_book({"version": 1, "rules": []}, CATALOGUE))
MGR = Manager("MGR1", True, "manager")
MAP = {"BOKCHOY": "果蔬A区", "CARROT": "果蔬A区", "MILK": "冷柜2"}  # YOGURT has no area yet
SID = make_id(1_767_229_200_000, 7)


def test_a_manager_replaces_the_whole_map_in_one_effect():
    outcome = shelf_areas.set_areas({**MAP, "MILK": " 冷柜2 "}, MGR, BOOKS, 1000)
    (effect,) = outcome.effects
    assert effect == SetShelfAreas((("BOKCHOY", "果蔬A区"), ("CARROT", "果蔬A区"), ("MILK", "冷柜2")), "MGR1", 1000)
    assert outcome.reply["areas"] == [
        {"area": "冷柜2", "skus": [{"sku": "MILK", "name": "Milk 1L"}]},
        {"area": "果蔬A区", "skus": [{"sku": "BOKCHOY", "name": "Bok choy"}, {"sku": "CARROT", "name": "Carrot"}]}]
    assert shelf_areas.set_areas({}, MGR, BOOKS, 2000).effects == (SetShelfAreas((), "MGR1", 2000),)  # cleared


@pytest.mark.parametrize(("manager", "status"), [(Manager("MGR1", False, "manager"), 401),
                                                 (Manager("clerk1", True, "cashier"), 403)])
def test_only_a_verified_manager_sets_areas(manager, status):
    with pytest.raises(Refused) as refused:
        shelf_areas.set_areas(MAP, manager, BOOKS, 0)
    assert refused.value.status == status


@pytest.mark.parametrize(("areas", "status", "named"), [
    ({**MAP, "NOPE": "冷柜2"}, 404, "NOPE"),
    ({**MAP, "YOGURT": ""}, 422, "areas.YOGURT"),
    ({**MAP, "YOGURT": "   "}, 422, "areas.YOGURT"),
    ({**MAP, "YOGURT": "x" * 33}, 422, "areas.YOGURT"),
    ({**MAP, "YOGURT": "冷柜\n2"}, 422, "control"),
    ({**MAP, "YOGURT": 2}, 422, "areas.YOGURT"),
])
def test_a_bad_item_is_named_and_nothing_is_written(areas, status, named):
    with pytest.raises(Refused) as refused:
        shelf_areas.set_areas(areas, MGR, BOOKS, 0)
    assert refused.value.status == status and named in str(refused.value)


def test_a_stocktake_of_one_area_counts_only_that_areas_skus_and_its_sheet_lists_the_area():
    outcome = stocktake.open_count(SID, {"areas": ["果蔬A区"]}, "clerk1", BOOKS, {}, {}, None, 0, MAP)
    (effect,) = outcome.effects
    assert isinstance(effect, OpenStocktake)
    assert {sku for sku, _, _ in effect.lines} == {"BOKCHOY", "CARROT"}  # not MILK (冷柜2), not YOGURT (no area)
    assert [(x["sku"], x["area"]) for x in outcome.reply["sheet"]] == [("BOKCHOY", "果蔬A区"), ("CARROT", "果蔬A区")]
    two = stocktake.open_count(SID, {"areas": ["冷柜2", "果蔬A区"]}, "clerk1", BOOKS, {}, {}, None, 0, MAP)
    # area by area (the staff walk the shop once), then by SKU
    assert [x["sku"] for x in two.reply["sheet"]] == ["MILK", "BOKCHOY", "CARROT"]


def test_an_area_with_nothing_placed_in_it_is_refused_naming_it():
    with pytest.raises(Refused) as refused:
        stocktake.open_count(SID, {"areas": ["冷柜2", "冷柜9"]}, "clerk1", BOOKS, {}, {}, None, 0, MAP)
    assert refused.value.status == 404 and "冷柜9" in str(refused.value) and "冷柜2" not in str(refused.value)
    with pytest.raises(Refused):  # a store that placed nothing has no areas to count
        stocktake.open_count(SID, {"areas": ["冷柜2"]}, "clerk1", BOOKS, {}, {}, None, 0)


def test_the_lane_body_and_the_posted_note_carry_an_area_scope():
    body = record_from_wire(OpenBody, {"scope": {"areas": ["果蔬A区", "果蔬A区"]}, "opened_by": "clerk1"}, "body")
    assert body.as_scope() == {"areas": ["果蔬A区"]}
    with pytest.raises(ProtocolError, match="is not an area"):
        record_from_wire(OpenBody, {"scope": {"areas": [3]}, "opened_by": "clerk1"}, "body")
    assert scope_text({"areas": ["果蔬A区", "冷柜2"]}) == "areas:果蔬A区,冷柜2"
