"""Barcodes the till reads: EAN-13, EAN-8, UPC-A, and GS1 variable-measure codes (prefixes 20-29).

Variable-measure layouts are **configuration**, as label scales let each chain choose them. A layout is a
pattern of one letter per digit over the whole code:

  P  prefix digit (must equal one of the layout's prefixes)     I  item code (PLU) digit
  W  weight digit (kg with `weight_decimals` decimals)           A  amount digit (yuan with `amount_decimals`)
  N  count digit                                                 V  price/measure verifier digit, GS1 7.9.3,
  C  the final check digit (GS1 mod 10)                             over the 4- or 5-digit field after it

e.g. "PPIIIIIWWWWWC" (21 + PLU + grams), "PPIIIIVAAAAAC" (German price with a 5-digit verifier),
"PPIIIIIAAAAAWWWWWC" (an 18-digit Chinese weight-and-amount code). Errors name what was wrong: a bad check
digit (with the expected one), a bad verifier, a prefix without a configured layout.
"""
from __future__ import annotations

import re
from typing import Literal

from protocol.errors import ProtocolError
from protocol.schema import record, require

# GS1 General Specifications 7.9.3 weighting tables (digit -> value added).
_W2_MINUS = (0, 2, 4, 6, 8, 9, 1, 3, 5, 7)
_W3 = (0, 3, 6, 9, 2, 5, 8, 1, 4, 7)
_W5_PLUS = (0, 5, 1, 6, 2, 7, 3, 8, 4, 9)
_W5_MINUS = (0, 5, 9, 4, 8, 3, 7, 2, 6, 1)
_AIM_PREFIX = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
VARIABLE_PREFIXES = tuple(str(p) for p in range(20, 30))
Symbology = Literal["ean13", "ean8", "upca"]


def gs1_check_digit(data: str) -> int:
    """Mod-10 check digit over `data` (digits without the check): weights 3,1,3,... from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(data)))
    return (10 - total % 10) % 10


def left13_check_digit(data: str) -> int:
    """Weights 1,3,1,... from the left: some Chinese 18-digit scale codes use this reading of 'EAN-13 method'."""
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(data))
    return (10 - total % 10) % 10


def price_verifier_digit(field: str) -> int:
    """GS1 price/measure verifier digit over a 4- or 5-digit field."""
    digits = [int(d) for d in field]
    tables: tuple[tuple[int, ...], ...]  # one weighting table per digit
    if len(digits) == 4:
        tables = (_W2_MINUS, _W2_MINUS, _W3, _W5_MINUS)
        return sum(t[d] for t, d in zip(tables, digits, strict=True)) * 3 % 10
    if len(digits) == 5:
        tables = (_W5_PLUS, _W2_MINUS, _W5_MINUS, _W5_PLUS, _W2_MINUS)
        r = (10 - sum(t[d] for t, d in zip(tables, digits, strict=True)) % 10) % 10
        return _W5_MINUS.index(r)
    raise ValueError("a verifier digit covers a 4- or 5-digit field")


@record
class GtinScan:
    gtin: str  # 13 digits (EAN-13, UPC-A with a leading 0) or 8 digits (EAN-8)
    symbology: Symbology


@record
class VariableMeasureScan:
    code: str
    layout: str
    item_code: str
    weight_g: int | None
    amount_fen: int | None
    count: int | None


@record
class VariableMeasureLayout:
    name: str
    prefixes: tuple[str, ...]
    pattern: str
    weight_decimals: int = 3
    amount_decimals: int = 2
    check: Literal["gs1", "left13"] = "gs1"

    def __post_init__(self) -> None:
        p = self.pattern
        where = f"layout {self.name!r}"
        require(bool(re.fullmatch(r"P+I+(V?(W+|A+|N+))+C", p)),
                f"{where}: pattern {p!r} must be P..I.. then value fields (W, A, N, each optionally after V), then C")
        require(len(p) in (13, 18), f"{where}: a code is 13 or 18 digits, pattern has {len(p)}")
        require(len(self.prefixes) > 0, f"{where}: needs at least one prefix")
        for prefix in self.prefixes:
            require(prefix.isdigit() and len(prefix) == p.count("P"),
                    f"{where}: prefix {prefix!r} must be {p.count('P')} digits, matching the P's")
            require(prefix[:2] in VARIABLE_PREFIXES, f"{where}: prefix {prefix!r} is not in the GS1 range 20-29")
        for m in re.finditer(r"V(W+|A+|N+)", p):
            require(len(m.group(1)) in (4, 5), f"{where}: a verifier covers a 4- or 5-digit field")
        for letter in "WAN":
            require(len(re.findall(f"{letter}+", p)) <= 1, f"{where}: field {letter} appears twice")
        require(0 <= self.weight_decimals <= 3, f"{where}: weight_decimals must be 0..3 (grams at most)")
        require(0 <= self.amount_decimals <= 2, f"{where}: amount_decimals must be 0..2 (fen at most)")

    def field(self, code: str, letter: str) -> str | None:
        m = re.search(f"{letter}+", self.pattern)
        return code[m.start():m.end()] if m else None

    def parse(self, code: str) -> VariableMeasureScan:
        where = f"{code} (layout {self.name})"
        check = gs1_check_digit if self.check == "gs1" else left13_check_digit
        expected = check(code[:-1])
        if int(code[-1]) != expected:
            raise ProtocolError(f"bad check digit in {where}: got {code[-1]}, expected {expected}")
        for m in re.finditer(r"V(W+|A+|N+)", self.pattern):
            value = code[m.start(1):m.end(1)]
            want = price_verifier_digit(value)
            if int(code[m.start()]) != want:
                raise ProtocolError(f"bad verifier digit in {where}: got {code[m.start()]}, expected {want} for {value}")
        weight, amount, count = (self.field(code, letter) for letter in "WAN")
        return VariableMeasureScan(
            code=code, layout=self.name, item_code=self.field(code, "I") or "",
            weight_g=int(weight) * 10 ** (3 - self.weight_decimals) if weight else None,
            amount_fen=int(amount) * 10 ** (2 - self.amount_decimals) if amount else None,
            count=int(count) if count else None,
        )


DEFAULT_LAYOUTS: tuple[VariableMeasureLayout, ...] = (
    # Label-scale defaults common in Chinese stores and POS software: 2-digit flag, 5-digit PLU, 5-digit value.
    VariableMeasureLayout(name="weight-g", prefixes=("21", "26", "28"), pattern="PPIIIIIWWWWWC"),
    VariableMeasureLayout(name="price-fen", prefixes=("20", "22", "23"), pattern="PPIIIIIAAAAAC"),
)


def normalise(raw: str) -> str:
    """Scanner text to bare digits: trim, drop an AIM symbology identifier (e.g. ']E0')."""
    code = raw.strip()
    code = _AIM_PREFIX.sub("", code, count=1)
    if not code.isdigit() or not code.isascii():
        raise ProtocolError(f"barcode must be digits only: {raw!r}")
    return code


def parse_scan(raw: str, layouts: tuple[VariableMeasureLayout, ...] = DEFAULT_LAYOUTS) -> GtinScan | VariableMeasureScan:
    """Validate and decode one scanned code. ProtocolError says exactly what was wrong."""
    code = normalise(raw)
    symbology: Symbology | None
    if len(code) == 12:
        code, symbology = "0" + code, "upca"
    elif len(code) == 13:
        symbology = "ean13"
    elif len(code) == 8:
        symbology = "ean8"
    elif len(code) == 18:
        symbology = None
    else:
        raise ProtocolError(f"barcode of {len(code)} digits: expected 8 (EAN-8), 12 (UPC-A), 13 (EAN-13) or 18")
    if len(code) in (13, 18) and code[:2] in VARIABLE_PREFIXES:
        for layout in layouts:
            if len(layout.pattern) == len(code) and any(code.startswith(p) for p in layout.prefixes):
                return layout.parse(code)
        raise ProtocolError(f"unknown variable-measure layout: no layout configured for prefix {code[:2]} "
                            f"and {len(code)} digits ({code})")
    if symbology is None:
        raise ProtocolError(f"18-digit code {code} is not a variable-measure code (prefix 20-29)")
    expected = gs1_check_digit(code[:-1])
    if int(code[-1]) != expected:
        raise ProtocolError(f"bad check digit in {symbology.upper()} {code}: got {code[-1]}, expected {expected}")
    return GtinScan(gtin=code, symbology=symbology)
