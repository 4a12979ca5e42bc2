"""Typed, frozen records checked against their type hints when they arrive from the wire.

`from_wire(cls, value, path)` turns the plain msgpack value into `cls` or raises ProtocolError naming the
field path and what was wrong. Supported hints: int, float, str, bool, bytes, Literal[...], X | None,
tuple[X, ...] and nested record dataclasses. Wire form of a record is a map of its field names.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

from protocol.errors import ProtocolError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def record(cls):
    """Decorator: a frozen, slotted, keyword-only dataclass that the codec can check."""
    return dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)


@functools.cache
def field_hints(cls) -> tuple[tuple[str, Any], ...]:
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


@functools.cache
def optional_fields(cls) -> frozenset[str]:
    """Fields with a default may be left out on the wire (configuration records use this; messages have none)."""
    return frozenset(f.name for f in dataclasses.fields(cls)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def from_wire(hint: Any, value: Any, path: str) -> Any:
    origin = get_origin(hint)
    if hint is int:
        if type(value) is not int:
            raise ProtocolError(f"{path}: expected an integer, got {type(value).__name__}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise ProtocolError(f"{path}: integer out of 64-bit range")
        return value
    if hint is float:  # JSON and msgpack may carry a whole number for a float field
        if type(value) not in (float, int) or not math.isfinite(value):
            raise ProtocolError(f"{path}: expected a number, got {type(value).__name__}")
        return float(value)
    if hint in (str, bool, bytes):
        if type(value) is not hint:
            raise ProtocolError(f"{path}: expected {_type_name(hint)}, got {type(value).__name__}")
        return value
    if origin is Literal:
        allowed = get_args(hint)
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise ProtocolError(f"{path}: {value!r} is not one of {list(allowed)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported union {hint}")
        return from_wire(inner[0], value, path)
    if origin is tuple:
        item_hint, ellipsis = get_args(hint)
        assert ellipsis is Ellipsis, "only homogeneous tuple[X, ...] is supported"
        if type(value) not in (list, tuple):
            raise ProtocolError(f"{path}: expected a list, got {type(value).__name__}")
        return tuple(from_wire(item_hint, item, f"{path}[{i}]") for i, item in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return record_from_wire(hint, value, path)
    raise TypeError(f"unsupported type hint {hint!r} at {path}")


def record_from_wire(cls, value: Any, path: str, skip: frozenset[str] = frozenset()) -> Any:
    if type(value) is not dict:
        raise ProtocolError(f"{path}: expected a map, got {type(value).__name__}")
    hints = field_hints(cls)
    names = {name for name, _ in hints}
    unknown = sorted(k for k in value if k not in names and k not in skip)
    if unknown:
        raise ProtocolError(f"{path}: unknown field(s) {unknown}")
    kwargs = {}
    for name, hint in hints:
        if name not in value:
            if name in optional_fields(cls):
                continue
            raise ProtocolError(f"{path}.{name}: missing")
        kwargs[name] = from_wire(hint, value[name], f"{path}.{name}")
    try:
        return cls(**kwargs)
    except ProtocolError:
        raise
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{path}: {exc}") from None


def to_wire(value: Any) -> Any:
    """A record (or a tuple of them) as plain maps and lists for msgpack."""
    if dataclasses.is_dataclass(value):
        return {name: to_wire(getattr(value, name)) for name, _ in field_hints(type(value))}
    if isinstance(value, tuple):
        return [to_wire(v) for v in value]
    return value


def require(condition: bool, message: str) -> None:
    """For __post_init__ invariants: a broken one is a ProtocolError with a precise message."""
    if not condition:
        raise ProtocolError(message)
