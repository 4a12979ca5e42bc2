"""Whole numbers typed into HTTP input (query parameters, path segments, headers): ASCII digits only.

`str.isdigit()` is true of `²`, `①` or `١٢`: `int("²")` then raises (a 500 where a 422 was meant) and `int("١٢")`
reads an Arabic-Indic 12 nobody typed on purpose. Every HTTP parameter that must be a whole number is checked here.
"""
from __future__ import annotations


def is_whole_number(text: str, max_digits: int | None = None) -> bool:
    """`text` is 1.. ASCII digits (at most `max_digits` of them when given)."""
    return (text.isascii() and text.isdigit()
            and (max_digits is None or len(text) <= max_digits))
