"""What the store's label scales should hold: one PLU record per catalogue product with a PLU, at today's price.

Pure. The price is the catalogue's list price unless a markdown set another one (`overrides`, sku -> fen, the
complete set of marked-down prices now). The barcode layout is the store's configured variable-measure layout
for the scale (weight- or price-embedded); products sold by the piece always get a price-embedded layout (a
weight layout cannot say how many pieces), printed with the layout's first prefix (e.g. 21 weighed, 20 counted).
A product whose PLU does not fit the layout's item field is left out, and said so in `skipped`.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol.barcodes import DEFAULT_LAYOUTS, VariableMeasureLayout
from protocol.pricing import Catalogue

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


def plu_records(catalogue: Catalogue | None, overrides: dict[str, int], weighed: VariableMeasureLayout,
                counted: VariableMeasureLayout) -> tuple[tuple[PluRecord, ...], tuple[str, ...]]:
    """(records sorted by PLU, skipped skus with why)."""
    if catalogue is None:
        return (), ()
    records, skipped = [], []
    for product in catalogue.by_sku.values():
        if not product.plu:
            continue
        layout = weighed if product.weighed and "W" in weighed.pattern else counted
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
