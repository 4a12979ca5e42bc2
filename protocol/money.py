"""Money is integer fen (1 yuan = 100 fen) everywhere: no floats ever hold an amount.

The one rounding rule: when an amount has to be derived from a product or ratio (grams x price per kg,
a percentage off), the exact rational result is rounded **half away from zero to the nearest fen**
(so 0.5 fen -> 1 fen, -0.5 fen -> -1 fen), and it is rounded **once per line**, at the end, never
in intermediate steps. Both the till and the mall use these functions, so they agree to the fen.
"""
from __future__ import annotations

from protocol.errors import ProtocolError

FEN_PER_YUAN = 100
GRAMS_PER_KG = 1000
BASIS_POINTS = 10_000  # 100% expressed in basis points (1 bp = 0.01%)


def div_round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero, in exact integer arithmetic."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if numerator >= 0:  # the common case, in one expression: floor((2n + d) / 2d) is n/d rounded half up
        return (2 * numerator + denominator) // (2 * denominator)
    quotient, remainder = divmod(-numerator, denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return -quotient


def weighed_amount_fen(weight_g: int, price_fen_per_kg: int) -> int:
    """The price of a weighed line: grams x fen-per-kg / 1000, one rounding."""
    return div_round(weight_g * price_fen_per_kg, GRAMS_PER_KG)


def portion_fen(amount_fen: int, basis_points: int) -> int:
    """basis_points/10000 of an amount (e.g. 1000 bp = 10%), one rounding."""
    return div_round(amount_fen * basis_points, BASIS_POINTS)


def format_fen(amount_fen: int) -> str:
    """2350 -> '23.50', -5 -> '-0.05' (for receipts and messages; never parsed back into arithmetic)."""
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(amount_fen), FEN_PER_YUAN)
    return f"{sign}{yuan}.{fen:02d}"


def format_kg(grams: int) -> str:
    """Grams as kg with three decimals, as tills and shops show weights: 1250 -> '1.250', -5 -> '-0.005'."""
    sign = "-" if grams < 0 else ""
    whole, rest = divmod(abs(grams), 1000)
    return f"{sign}{whole}.{rest:03d}"


def parse_yuan(text: str) -> int:
    """'23.5' or '23.50' -> 2350 fen; more than two decimals or anything else is a ProtocolError."""
    raw = text.strip()
    sign = -1 if raw.startswith("-") else 1
    body = raw.lstrip("+-")
    whole, _, frac = body.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 2:
        raise ProtocolError(f"not an amount in yuan with at most two decimals: {text!r}")
    return sign * (int(whole) * FEN_PER_YUAN + int(frac.ljust(2, "0") or 0))
