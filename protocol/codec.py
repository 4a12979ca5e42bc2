"""One encode() and one decode() over msgpack, with explicit limits.

decode() turns **any** bad frame - not msgpack, truncated, trailing bytes, oversized, too deep, wrongly
typed, unknown kind, unknown schema version, broken invariant - into one ProtocolError whose message
says what was wrong. It never raises anything else, so a consumer can dead-letter the frame and go on.
"""
from __future__ import annotations

from typing import Any

import msgpack

from protocol.errors import ProtocolError
from protocol.messages import ALL_MESSAGES, Message
from protocol.schema import record_from_wire, to_wire

MAX_FRAME_BYTES = 256 * 1024
MAX_NESTING = 6  # frame map > list of records > record > ... ; deeper is never legitimate
MAX_CONTAINER_ITEMS = 10_000
MAX_STRING_BYTES = 16 * 1024
_ENVELOPE = frozenset({"kind", "schema_version"})


def pack(value: Any) -> bytes:
    """Plain values (maps, lists, scalars) as msgpack: how actor commands are journaled and fingerprinted."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def unpack(raw: bytes) -> Any:
    """The inverse of `pack` for data this system wrote itself (a journal, a snapshot): no frame limits."""
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


def encode(message: Message) -> bytes:
    body = to_wire(message)
    body["kind"] = message.KIND
    body["schema_version"] = message.SCHEMA_VERSION
    frame: bytes = msgpack.packb(body, use_bin_type=True)
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"{message.KIND}: frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    return frame


def check_depth(value: Any, limit: int) -> None:
    """ProtocolError when `value` (maps and lists) nests deeper than `limit`. Level by level, looking only into
    containers (scalars are most of a frame and need no visit)."""
    level, depth = [value], 1
    while level:
        if depth > limit:
            raise ProtocolError(f"nested deeper than {limit} levels")
        deeper: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            deeper.extend(c for c in children if type(c) is dict or type(c) is list)
        level, depth = deeper, depth + 1


def unpack_frame(frame: bytes) -> dict[str | bytes, Any]:
    """Bytes to a plain msgpack map, within the limits; ProtocolError otherwise."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"frame must be bytes, got {type(frame).__name__}")
    if len(frame) == 0:
        raise ProtocolError("empty frame")
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        value = msgpack.unpackb(
            bytes(frame), raw=False, strict_map_key=True, use_list=True,
            max_str_len=MAX_STRING_BYTES, max_bin_len=MAX_FRAME_BYTES,
            max_array_len=MAX_CONTAINER_ITEMS, max_map_len=MAX_CONTAINER_ITEMS, max_ext_len=0,
        )
    except msgpack.ExtraData:
        raise ProtocolError("trailing bytes after the message") from None
    except (msgpack.OutOfData, ValueError) as exc:
        # OutOfData: truncated; ValueError covers FormatError, StackError, UnicodeDecodeError, limits.
        raise ProtocolError(f"not a valid msgpack frame: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the contract: nothing but ProtocolError escapes
        raise ProtocolError(f"not a valid msgpack frame: {type(exc).__name__}: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"frame must be a map, got {type(value).__name__}")
    check_depth(value, MAX_NESTING)
    return value


def decode(frame: bytes) -> Message:
    body = unpack_frame(frame)
    kind = body.get("kind")
    if not isinstance(kind, str):
        raise ProtocolError("frame has no 'kind' string")
    cls = ALL_MESSAGES.get(kind)
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind!r}")
    version = body.get("schema_version")
    if type(version) is not int:
        raise ProtocolError(f"{kind}: missing or non-integer schema_version")
    if version != cls.SCHEMA_VERSION:
        raise ProtocolError(f"{kind}: schema_version {version} is not supported (this build reads {cls.SCHEMA_VERSION})")
    try:
        message: Message = record_from_wire(cls, body, kind, skip=_ENVELOPE)
        return message
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError(f"{kind}: frame nested too deeply") from None
