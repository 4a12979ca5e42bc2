"""What the store's label scales should hold: one PLU record per catalogue product with a PLU, at today's price.

Pure. The price is the catalogue's list price unless a markdown set another one (`overrides`, sku -> fen, the
complete set of marked-down prices now). The barcode layout is the store's configured variable-measure layout
for the scale (weight- or price-embedded); products sold by the piece always get a price-embedded layout (a
weight layout cannot say how many pieces), printed with the layout's first prefix (e.g. 21 weighed, 20 counted).
A product whose PLU does not fit the layout's item field is left out, and said so in `skipped`.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.core.markdowns import Label
from protocol.barcodes import DEFAULT_LAYOUTS, VariableMeasureLayout
from protocol.money import GRAMS_PER_KG, div_round
from protocol.pricing import BasketLine, Catalogue, PricingContext, price_basket

DEFAULT_WEIGHED_LAYOUT = "weight-g"
DEFAULT_COUNTED_LAYOUT = "price-fen"


@dataclass(frozen=True, slots=True)
class PluRecord:
    plu: str
    sku: str
    name: str
    unit: str  # "kg" (price per kg) | "piece"
    price_fen: int
    prefix: str
    pattern: str
    weight_decimals: int
    amount_decimals: int

    def fields(self) -> tuple[object, ...]:
        """In the order of the label-scale protocol's PLU command (edge.devices.label_scale_codec.COMMANDS)."""
        return (self.plu, self.sku, self.name, self.unit, self.price_fen, self.prefix, self.pattern,
                self.weight_decimals, self.amount_decimals)


def layout_named(name: str, layouts: tuple[VariableMeasureLayout, ...] = DEFAULT_LAYOUTS) -> VariableMeasureLayout:
    for layout in layouts:
        if layout.name == name:
            return layout
    raise ValueError(f"no barcode layout named {name!r}; the box has {', '.join(x.name for x in layouts)}")


def label_layout(weighed_product: bool, weighed: VariableMeasureLayout,
                 counted: VariableMeasureLayout) -> VariableMeasureLayout:
    """The layout a scale prints a product's labels in: its weighed layout for goods by the kg (when that layout
    carries a weight or an amount), else its counted (price-embedded) layout."""
    return weighed if weighed_product and "W" in weighed.pattern else counted


def embeds_price(layout: VariableMeasureLayout) -> bool:
    """A code in this layout carries the label's price (an amount field, no weight): only such a code says which
    price it was printed at. A weight-embedded code (21 IIIII WWWWW C) for 500 g is the same code at 19:30 marked
    down and tomorrow at the list price, so it is never a markdown label."""
    return "A" in layout.pattern and "W" not in layout.pattern


def plu_records(catalogue: Catalogue | None, overrides: dict[str, int], weighed: VariableMeasureLayout,
                counted: VariableMeasureLayout) -> tuple[tuple[PluRecord, ...], tuple[str, ...]]:
    """(records sorted by PLU, skipped skus with why)."""
    if catalogue is None:
        return (), ()
    records, skipped = [], []
    for product in catalogue.by_sku.values():
        if not product.plu:
            continue
        layout = label_layout(product.weighed, weighed, counted)
        width = layout.pattern.count("I")
        plu = product.plu.lstrip("0") or "0"
        if len(plu) > width:
            skipped.append(f"{product.sku}: PLU {product.plu} is longer than layout {layout.name}'s {width} digits")
            continue
        price = overrides.get(product.sku, product.price_fen)
        records.append(PluRecord(plu=plu.zfill(width), sku=product.sku, name=product.name,
                                 unit="kg" if product.weighed else "piece", price_fen=price,
                                 prefix=layout.prefixes[0], pattern=layout.pattern,
                                 weight_decimals=layout.weight_decimals, amount_decimals=layout.amount_decimals))
    return tuple(sorted(records, key=lambda r: r.plu)), tuple(skipped)


@dataclass(frozen=True, slots=True)
class Markdown:
    """A markdown the promotion book gives a PLU product now: its price per kg / piece, and the rule that does it."""
    price_fen: int
    rule_id: str
    rule_name: str


def markdown_label(markdown: Markdown, list_fen: int, sku: str, code: str, grams: int, amount_fen: int,
                   weighed: bool, layout: VariableMeasureLayout) -> Label | None:
    """A label a scale printed, as a markdown label the till sells at its price without marking it down again and
    with the grams the scale weighed (edge/core/markdowns.py `label_line`), when its amount is the markdown's price
    for its weight (one piece); None when it is not (printed before the markdown, or for more than one piece), or
    when its code (in `layout`, the one the scale printed it in) does not embed the price (`embeds_price`)."""
    if not embeds_price(layout):
        return None
    if weighed:
        if grams <= 0 or amount_fen != div_round(markdown.price_fen * grams, GRAMS_PER_KG):
            return None
        was = div_round(list_fen * grams, GRAMS_PER_KG)
    else:
        if amount_fen != markdown.price_fen:
            return None
        was, grams = list_fen, 0
    if amount_fen <= 0 or was < amount_fen:
        return None
    return Label(code=code, sku=sku, lot="", use_by="", rule_id=markdown.rule_id, rule_name=markdown.rule_name,
                 was_fen=was, now_fen=amount_fen, weight_g=grams)


def markdown_prices(catalogue: Catalogue | None, rule_book, store_id: str, now_ms: int) -> dict[str, Markdown]:
    """The prices per kg / per piece the promotion book's markdowns set right now for the products a label scale
    sells (those with a PLU), by the till's own evaluator: time-of-day markdowns (19:00 leafy greens). Loose goods on
    a scale have no lot, so markdowns by days to use-by do not apply here (their own labels carry those)."""
    if catalogue is None or rule_book is None:
        return {}
    ctx = PricingContext(channel="offline", store_id=store_id, now_ms=now_ms)
    out = {}
    for product in catalogue.by_sku.values():
        if not product.plu or "offline" not in product.channels:
            continue
        line = BasketLine(sku=product.sku, weight_g=GRAMS_PER_KG) if product.weighed else BasketLine(sku=product.sku,
                                                                                                       qty=1)
        priced = price_basket(catalogue, rule_book, [line], ctx).lines[0]
        if priced.markdown_rule and priced.list_fen - priced.markdown_fen > 0:
            rule = rule_book.by_id[priced.markdown_rule]
            out[product.sku] = Markdown(priced.list_fen - priced.markdown_fen, rule.id, rule.name)
    return out
