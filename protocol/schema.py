"""Typed, frozen records checked against their type hints when they arrive from the wire.

`from_wire(cls, value, path)` turns the plain msgpack value into `cls` or raises ProtocolError naming the
field path and what was wrong. Supported hints: int, float, str, bool, bytes, Literal[...], X | None,
tuple[X, ...], nested record dataclasses, and dict[str, Any] (a map passed through as it is, for payloads whose
shape the record does not fix). Wire form of a record is a map of its field names.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin, get_type_hints

from protocol.errors import ProtocolError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Refused in every text field: NUL and the other C0 controls but tab, line feed and carriage return (free text may
# hold those), and DEL.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


T = typing.TypeVar("T")
Converter = Callable[[Any, str], Any]  # (plain wire value, field path) -> the checked value


@typing.dataclass_transform(frozen_default=True, kw_only_default=True)
def record(cls: type[T]) -> type[T]:
    """Decorator: a frozen, slotted, keyword-only dataclass that the codec can check."""
    return dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)


@functools.cache
def _fields_in_order(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def _setters(cls: type) -> tuple[tuple[str, Any], ...]:
    """Each field's name and its slot's setter (C-level, past the frozen __setattr__): rebuilding is on hot paths."""
    return tuple((name, getattr(cls, name).__set__) for name in _fields_in_order(cls))


@functools.cache
def _is_flat(cls: type) -> bool:
    return not any(deep for _, deep in _wire_plan(cls))


def record_from_trusted(cls: type, value: dict[str, Any]) -> Any:
    """A record from the map `to_wire` made of it a moment ago in this system (an actor command crossing to its host):
    rebuilt without checks, since it was checked when it was made. Records with nested ones take the checked path."""
    if not _is_flat(cls):
        return record_from_wire(cls, value, cls.__name__, skip=frozenset(value.keys() - set(_fields_in_order(cls))))
    obj: Any = object.__new__(cls)
    for name, set_slot in _setters(cls):
        set_slot(obj, value[name])
    return obj


@functools.cache
def field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


@functools.cache
def optional_fields(cls: type) -> frozenset[str]:
    """Fields with a default may be left out on the wire (configuration records use this; messages have none)."""
    return frozenset(f.name for f in dataclasses.fields(cls)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def from_wire(hint: Any, value: Any, path: str) -> Any:
    return converter(hint)(value, path)


@functools.cache
def converter(hint: Any) -> Converter:
    """A checking converter for one type hint, built once (decoding is on every hot path)."""
    origin = get_origin(hint)
    if hint is int:
        def conv(value: Any, path: str) -> Any:
            if type(value) is not int:
                raise ProtocolError(f"{path}: expected an integer, got {type(value).__name__}")
            if not INT64_MIN <= value <= INT64_MAX:
                raise ProtocolError(f"{path}: integer out of 64-bit range")
            return value
        return conv
    if hint is float:  # JSON and msgpack may carry a whole number for a float field
        def conv(value: Any, path: str) -> Any:
            if type(value) not in (float, int) or not math.isfinite(value):
                raise ProtocolError(f"{path}: expected a number, got {type(value).__name__}")
            return float(value)
        return conv
    if hint is str:
        def conv(value: Any, path: str) -> Any:
            if type(value) is not str:
                raise ProtocolError(f"{path}: expected str, got {type(value).__name__}")
            bad = CONTROL_CHARACTERS.search(value)
            if bad is not None:  # PostgreSQL refuses NUL in text; none of these belongs in a name, id or note
                raise ProtocolError(f"{path}: control character {bad.group()!r} at position {bad.start()}")
            return value
        return conv
    if hint in (bool, bytes):
        def conv(value: Any, path: str) -> Any:
            if type(value) is not hint:
                raise ProtocolError(f"{path}: expected {_type_name(hint)}, got {type(value).__name__}")
            return value
        return conv
    if origin is Literal:
        allowed = get_args(hint)
        keys = {(type(a), a) for a in allowed}

        def conv(value: Any, path: str) -> Any:
            try:
                ok = (type(value), value) in keys
            except TypeError:  # unhashable
                ok = False
            if not ok:
                raise ProtocolError(f"{path}: {value!r} is not one of {list(allowed)}")
            return value
        return conv
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in get_args(hint) if a is not type(None)]
        if len(inner) != 1 or type(None) not in get_args(hint):
            raise TypeError(f"unsupported union {hint}")
        inner_conv = converter(inner[0])
        return lambda value, path: None if value is None else inner_conv(value, path)
    if origin is tuple:
        item_hint, ellipsis = get_args(hint)
        assert ellipsis is Ellipsis, "only homogeneous tuple[X, ...] is supported"
        item_conv = converter(item_hint)

        def conv(value: Any, path: str) -> Any:
            if type(value) not in (list, tuple):
                raise ProtocolError(f"{path}: expected a list, got {type(value).__name__}")
            return tuple(item_conv(item, f"{path}[{i}]") for i, item in enumerate(value))
        return conv
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda value, path: record_from_wire(hint, value, path)
    if origin is dict and get_args(hint) == (str, Any):
        def conv(value: Any, path: str) -> Any:
            if type(value) is not dict or not all(type(k) is str for k in value):
                raise ProtocolError(f"{path}: expected a map with string keys, got {type(value).__name__}")
            return value
        return conv
    raise TypeError(f"unsupported type hint {hint!r}")


@functools.cache
def _field_converters(cls: type) -> tuple[tuple[str, Converter, bool], ...]:
    optional = optional_fields(cls)
    return tuple((name, converter(hint), name in optional) for name, hint in field_hints(cls))


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(name for name, _ in field_hints(cls))


def record_from_wire(cls: type, value: Any, path: str, skip: frozenset[str] = frozenset()) -> Any:
    if type(value) is not dict:
        raise ProtocolError(f"{path}: expected a map, got {type(value).__name__}")
    extra = value.keys() - _field_names(cls) - skip
    if extra:
        raise ProtocolError(f"{path}: unknown field(s) {sorted(str(k) for k in extra)}")
    kwargs: dict[str, Any] = {}
    for name, conv, optional in _field_converters(cls):
        if name not in value:
            if optional:
                continue
            raise ProtocolError(f"{path}.{name}: missing")
        kwargs[name] = conv(value[name], f"{path}.{name}")
    try:
        return cls(**kwargs)
    except ProtocolError:
        raise
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{path}: {exc}") from None


_PLAIN = (int, float, str, bool, bytes, type(None))


@functools.cache
def _wire_plan(cls: type) -> tuple[tuple[str, bool], ...]:
    """Per field: its name and whether its value needs converting (records, tuples); most fields are plain."""
    def plain(hint: Any) -> bool:
        origin = get_origin(hint)
        if origin is Literal or hint in _PLAIN:
            return True
        if origin in (typing.Union, types.UnionType):
            return all(plain(a) for a in get_args(hint))
        return False
    return tuple((name, not plain(hint)) for name, hint in field_hints(cls))


def to_wire(value: Any) -> Any:
    """A record (or a tuple of them) as plain maps and lists for msgpack."""
    if dataclasses.is_dataclass(value):
        cls: type = type(value)  # plain `type` for the cache: mypy takes type[X] as unhashable (python/mypy#11470)
        return {name: to_wire(getattr(value, name)) if deep else getattr(value, name)
                for name, deep in _wire_plan(cls)}
    if isinstance(value, tuple):
        return [to_wire(v) for v in value]
    return value


def require(condition: bool, message: str) -> None:
    """For __post_init__ invariants: a broken one is a ProtocolError with a precise message."""
    if not condition:
        raise ProtocolError(message)
