"""A reference world generated from a seed: a fresh-food catalogue and a promotion book using every rule type.

Deterministic for a seed, so tests, load tests, the fleet and the demo share it: stores placed around a city,
members with phones and levels, and the label-scale barcodes printed on pre-weighed packs.
"""
from __future__ import annotations

import random

from protocol.pricing import Catalogue, LevelPrice, Product, RuleBook, load_rule_book
from protocol.pricing.catalogue import Unit

# (category, unit, names, price range in fen: per kg for "kg", per piece otherwise)
FRESH_FOOD: list[tuple[str, Unit, list[str], tuple[int, int]]] = [
    ("vegetables", "kg", ["Bok choy", "Spinach", "Tomato", "Cucumber", "Carrot", "Potato", "Broccoli", "Eggplant",
                          "Chinese cabbage", "Lotus root", "Garlic chives", "Winter melon", "Celery", "Onion"], (300, 1600)),
    ("fruit", "kg", ["Fuji apple", "Banana", "Pear", "Mandarin", "Grapes", "Kiwi", "Mango", "Watermelon", "Lychee",
                     "Dragon fruit", "Strawberry", "Pomelo"], (500, 4000)),
    ("meat", "kg", ["Pork belly", "Pork loin", "Beef brisket", "Lamb leg", "Chicken thigh", "Chicken wings",
                    "Minced pork", "Spare ribs"], (1800, 12000)),
    ("seafood", "kg", ["Grass carp", "Tilapia", "Shrimp", "Clams", "Squid", "Yellow croaker"], (1600, 16000)),
    ("eggs", "piece", ["Eggs x10", "Free-range eggs x6", "Duck eggs x6", "Quail eggs x20"], (800, 2800)),
    ("dairy", "piece", ["Milk 1L", "Yoghurt 4-pack", "Soy milk 1L", "Cheese slices", "Butter 200g"], (500, 3500)),
    ("packed", "piece", ["Tofu", "Rice 5kg", "Noodles", "Dumplings 1kg", "Soy sauce", "Peanut oil 5L", "Bread",
                         "Steamed buns x6", "Sesame paste"], (300, 9000)),
]
LEVELS = ("silver", "gold", "platinum")
# per category: the supplier the stores order from, the standard cost as a share of the list price (%), and the
# shelf life in days (a delivery note without a use-by gets received + this)
SUPPLY: dict[str, tuple[str, int, int]] = {
    "vegetables": ("Jiangnan Greens Co-op", 55, 3), "fruit": ("Orchard Direct", 60, 7),
    "meat": ("Huadong Meats", 70, 3), "seafood": ("East Sea Catch", 65, 2), "eggs": ("Sunny Farm Eggs", 70, 21),
    "dairy": ("Bright Dairy Supply", 72, 10), "packed": ("Metro Grocery Wholesale", 75, 180),
}


def supply_fields(category: str, price_fen: int) -> dict:
    """A product's supplier, standard cost and shelf life, from its category (no randomness: the seed's draws stay
    as they were)."""
    supplier, cost_pct, shelf_life_days = SUPPLY[category]
    return {"supplier": supplier, "cost_fen": price_fen * cost_pct // 100, "shelf_life_days": shelf_life_days}


def _ean13(body12: str) -> str:
    from protocol.barcodes import gs1_check_digit
    return body12 + str(gs1_check_digit(body12))


def reference_catalogue(seed: int = 7, variants: int = 4) -> Catalogue:
    """About 60 x `variants` products: each base item in a few grades/origins, realistic prices."""
    rng = random.Random(seed)
    products: list[Product] = []
    plu = 100
    for category, unit, names, (low, high) in FRESH_FOOD:
        for name in names:
            for v in range(variants):
                base = rng.randint(low, high)
                sku = f"{category[:3].upper()}-{name.split()[0].upper()[:6]}-{len(products):04d}"
                member = (LevelPrice(level="gold", price_fen=base * 95 // 100),) if rng.random() < 0.3 else ()
                plu += 1
                products.append(Product(
                    sku=sku, name=f"{name} #{v + 1}" if v else name, category=category, unit=unit, price_fen=base,
                    member_prices=member, plu=f"{plu:05d}" if unit == "kg" else "",
                    gtin=_ean13(f"690{len(products):09d}") if unit == "piece" else "",
                    channels=("offline",) if rng.random() < 0.03 else ("offline", "online"),
                    **supply_fields(category, base),
                ))
    return Catalogue(products)


def reference_rule_book(catalogue: Catalogue, rules: int = 200, seed: int = 7, version: int = 1) -> RuleBook:
    return load_rule_book(reference_rule_data(catalogue, rules, seed, version), catalogue)


def reference_rule_data(catalogue: Catalogue, rules: int = 200, seed: int = 7, version: int = 1) -> dict:
    """A rule book of `rules` rules that uses every rule type, scopes, windows, groups and budgets."""
    rng = random.Random(seed)
    skus = sorted(catalogue.by_sku)
    piece_skus = [s for s in skus if not catalogue.get(s).weighed]
    categories = sorted(catalogue.categories)
    out = []
    for i in range(rules):
        kind = rng.choices(["item", "member", "threshold", "coupon", "gift", "group"], [50, 8, 12, 14, 8, 8])[0]
        rule: dict = {"id": f"R{i:04d}", "name": "", "priority": rng.randint(0, 9)}
        if rng.random() < 0.2:
            rule["channels"] = [rng.choice(["offline", "online"])]
        if rng.random() < 0.15:
            start = rng.randint(6, 20)
            rule["daily"] = [f"{start:02d}:00-{start + 2:02d}:00"]
        if rng.random() < 0.1:
            rule["budget_fen"] = rng.randint(10_000, 1_000_000)
        if kind in ("item", "member"):
            # As in real books, most deals name items; a few cover a category, and most of those are exclusive.
            if rng.random() < 0.85:
                rule["skus"] = rng.sample(skus, rng.randint(1, 4))
            else:
                rule["categories"] = [rng.choice(categories)]
                rule["group"] = f"category-{rule['categories'][0]}"
            only_pieces = all(not catalogue.get(s).weighed for s in rule.get("skus", [])) and "skus" in rule
            if only_pieces and rng.random() < 0.4:
                rule["amount_off_fen"] = rng.randint(50, 300)
            else:
                rule["percent_off_bp"] = rng.choice([500, 1000, 1500, 2000, 3000])
            if rng.random() < 0.3 and "group" not in rule:
                rule["group"] = f"line-{rng.randint(0, 5)}"
            if kind == "member":
                rule.update(type="member_discount", member_levels=rng.sample(LEVELS, rng.randint(1, 2)), name="Member deal")
            else:
                rule.update(type="item_discount", name="Item deal")
        elif kind == "threshold":
            spend = rng.choice([3000, 4000, 6000, 10000])
            rule.update(type="spend_threshold", name=f"Spend {spend // 100}",
                        tiers=[{"spend_fen": spend, "off_fen": spend // 5}, {"spend_fen": spend * 2, "off_fen": spend // 2}],
                        repeat=rng.random() < 0.3, group=f"basket-{rng.randint(0, 2)}")
            if rng.random() < 0.4:
                rule["categories"] = [rng.choice(categories)]
        elif kind == "coupon":
            rule.update(type="coupon", name="Coupon", min_spend_fen=rng.choice([0, 2000, 5000]),
                        new_member_only=rng.random() < 0.2, group="coupons")
            if rng.random() < 0.5:
                rule["amount_off_fen"] = rng.choice([300, 500, 1000])
            else:
                rule["percent_off_bp"] = rng.choice([500, 1000])
            if rng.random() < 0.3:
                rule["categories"] = [rng.choice(categories)]
        elif kind == "gift":
            rule.update(type="gift", name="Gift", spend_fen=rng.choice([5000, 8000, 12000]), gift_sku=rng.choice(piece_skus))
        else:
            sku = rng.choice(skus)
            rule.update(type="group_buy", name="Group buy", skus=[sku], group_size=rng.randint(2, 5),
                        group_price_fen=max(1, catalogue.get(sku).price_fen * 8 // 10))
        out.append(rule)
    return {"version": version, "rules": out}


CITY_CENTRE = (31.2304, 121.4737)  # a city centre; stores are placed around it


def reference_stores(count: int = 5, seed: int = 7) -> list[dict]:
    """Stores around the city centre, with radii, opening hours and slot capacities."""
    rng = random.Random(seed)
    stores = []
    for i in range(count):
        stores.append({
            "store_id": f"S{i + 1:03d}", "name": f"FreshMesh #{i + 1}",
            "lat": round(CITY_CENTRE[0] + rng.uniform(-0.08, 0.08), 6),
            "lon": round(CITY_CENTRE[1] + rng.uniform(-0.08, 0.08), 6),
            "pickup_radius_m": 10_000, "delivery_radius_m": 3_000,
            "opens": "07:00", "closes": "22:00", "slot_minutes": 60, "slot_capacity": 40,
        })
    return stores


def reference_members(count: int = 1000, seed: int = 7) -> list[dict]:
    """Members as customers know themselves: a mobile number, a level, and what they usually top up."""
    rng = random.Random(seed)
    phones = rng.sample(range(10**8), count)
    return [{"phone": f"13{rng.randint(5, 9)}{n:08d}", "level": rng.choices(("", *LEVELS), (60, 25, 12, 3))[0],
             "top_up_fen": rng.choice((10_000, 20_000, 50_000, 100_000))} for n in phones]


def label_barcode(plu: str, grams: int, prefix: str = "21") -> str:
    """The EAN-13 a label scale prints on a pre-weighed pack: prefix, 5-digit PLU, weight in grams, check digit
    (layout PPIIIIIWWWWWC, the default one in protocol/barcodes)."""
    if not (len(plu) == 5 and plu.isdigit() and 0 < grams < 100_000):
        raise ValueError(f"a label needs a 5-digit PLU and 1..99999 g, not {plu!r} and {grams} g")
    return _ean13(f"{prefix}{plu}{grams:05d}")


LEAFY_GREENS = ("Bok choy", "Spinach", "Chinese cabbage", "Garlic chives", "Celery")
BAKERY_PREPARED = ("Bread", "Steamed buns x6", "Dumplings 1kg")


def markdown_rule_data(catalogue: Catalogue) -> list[dict]:
    """The store's end-of-day clearance (日清) and near-expiry markdowns, at the tills only: leafy greens -30% from
    19:00, bakery and prepared food -50% from 20:00, anything on its lot's use-by day -50%."""
    def named(names: tuple[str, ...]) -> list[str]:
        return sorted(p.sku for p in catalogue.by_sku.values() if p.name.split(" #")[0] in names)
    return [
        {"id": "MD-GREENS-1900", "type": "markdown", "name": "Leafy greens after 19:00", "skus": named(LEAFY_GREENS),
         "from_time": "19:00", "percent_off_bp": 3000, "channels": ["offline"], "priority": 5},
        {"id": "MD-BAKERY-2000", "type": "markdown", "name": "Bakery and prepared after 20:00",
         "skus": named(BAKERY_PREPARED), "from_time": "20:00", "percent_off_bp": 5000, "channels": ["offline"],
         "priority": 5},
        {"id": "MD-USE-BY-DAY", "type": "markdown", "name": "On its use-by day", "days_to_use_by": 0,
         "percent_off_bp": 5000, "channels": ["offline"], "priority": 5},
    ]


def reference_world(stores: int = 5, seed: int = 7, rules: int = 200) -> dict:
    """Everything the cloud serves: stores, catalogue and rule book (with the markdowns), as one JSON-able map."""
    catalogue = reference_catalogue(seed)
    book = reference_rule_data(catalogue, rules, seed)
    book["rules"] += markdown_rule_data(catalogue)
    load_rule_book(book, catalogue)  # a world file is a valid book
    return {"stores": reference_stores(stores, seed), "catalogue": catalogue.to_data(), "rule_book": book}


if __name__ == "__main__":  # python -m simulators.world FILE [STORES] : write a world file
    import json
    import sys
    target = sys.argv[1]
    world = reference_world(stores=int(sys.argv[2]) if len(sys.argv) > 2 else 5, rules=60)
    with open(target, "w") as fh:
        json.dump(world, fh, indent=1, sort_keys=True)
        fh.write("\n")
