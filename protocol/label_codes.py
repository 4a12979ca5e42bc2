"""Composing GS1 variable-measure codes (the inverse of protocol.barcodes' layouts): what a label scale prints.

`compose(layout, item, weight_g=..., amount_fen=..., count=...)` fills a layout's pattern: P the layout's first
prefix (or the one given), I the item code (PLU) zero-padded, W/A/N the value at the layout's decimals, V the
GS1 price/measure verifier over the field after it, C the check digit by the layout's rule. It refuses (ValueError,
naming the field) a value that does not fit or would lose precision, so a label never says less than was weighed.
"""
from __future__ import annotations

import re

from protocol.barcodes import VariableMeasureLayout, gs1_check_digit, left13_check_digit, price_verifier_digit


def _field(letter: str, value: int | None, width: int, what: str) -> str:
    if value is None:
        raise ValueError(f"the layout has a {what} field ({letter}), but no {what} was given")
    if not 0 <= value < 10 ** width:
        raise ValueError(f"{what} {value} does not fit the layout's {width}-digit {letter} field")
    return f"{value:0{width}d}"


def compose(layout: VariableMeasureLayout, item: str, *, weight_g: int | None = None, amount_fen: int | None = None,
            count: int | None = None, prefix: str | None = None) -> str:
    prefix = prefix if prefix is not None else layout.prefixes[0]
    if prefix not in layout.prefixes:
        raise ValueError(f"prefix {prefix} is not one of layout {layout.name}'s ({', '.join(layout.prefixes)})")
    pattern = layout.pattern
    width = pattern.count("I")
    if not (item.isdigit() and len(item.lstrip("0") or "0") <= width):
        raise ValueError(f"item code {item!r} does not fit the layout's {width}-digit item field")
    values = {}
    if "W" in pattern:
        scale = 10 ** (3 - layout.weight_decimals)
        if weight_g is not None and weight_g % scale:
            raise ValueError(f"weight {weight_g} g is not a whole number of the layout's units ({scale} g)")
        values["W"] = (None if weight_g is None else weight_g // scale, "weight")
    if "A" in pattern:
        scale = 10 ** (2 - layout.amount_decimals)
        if amount_fen is not None and amount_fen % scale:
            raise ValueError(f"amount {amount_fen} fen is not a whole number of the layout's units ({scale} fen)")
        values["A"] = (None if amount_fen is None else amount_fen // scale, "amount")
    if "N" in pattern:
        values["N"] = (count, "count")
    digits = list(prefix + item.zfill(width)[-width:] + "0" * (len(pattern) - len(prefix) - width))
    for letter, (value, what) in values.items():
        m = re.search(f"{letter}+", pattern)
        assert m is not None
        digits[m.start():m.end()] = _field(letter, value, m.end() - m.start(), what)
    for m in re.finditer(r"V(W+|A+|N+)", pattern):
        digits[m.start()] = str(price_verifier_digit("".join(digits[m.start(1):m.end(1)])))
    body = "".join(digits[:-1])
    check = gs1_check_digit if layout.check == "gs1" else left13_check_digit
    return body + str(check(body))
