"""Request bodies and headers into typed values: a wrong one is a 4xx that names what was wrong.

The functions take bytes and header values, not Starlette objects, so the flash-order fast path and the routed
endpoints check requests with the very same code and limits.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from starlette.requests import Request

from cloud.http.problems import HTTPProblem
from protocol import codec
from protocol.errors import ProtocolError
from protocol.schema import from_wire, record_from_wire

MAX_BODY_BYTES = 64 * 1024
# HQ's whole catalogue or rule book in one body (a chain's few hundred products with lots, costs and suppliers
# pass 64 KiB); still bounded, and read as it arrives
WORLD_BODY_MAX_BYTES = 512 * 1024
MAX_BODY_NESTING = 16  # the deepest legitimate body (a rule book) is about half of it
MAX_PATH_ID_CHARS = 128
KEY_MIN_CHARS, KEY_MAX_CHARS = 8, 128
T = TypeVar("T")


def json_object(raw: bytes, content_type: str = "", limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    if content_type.split(";")[0].strip() not in ("application/json", ""):
        raise HTTPProblem(415, "send the body as application/json")
    if len(raw) > limit:
        raise HTTPProblem(413, f"body of {len(raw)} bytes exceeds {limit}")
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise HTTPProblem(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPProblem(422, "body must be a JSON object")
    try:
        codec.check_depth(data, MAX_BODY_NESTING)
    except ProtocolError as exc:
        raise HTTPProblem(422, f"body: {exc}") from None
    return data


def checked_path(params: dict[str, Any]) -> None:
    """Ids in the path, checked like every text field (no control characters) and bounded: a NUL or a megabyte in
    an id is a 422 that names it, never a database error."""
    for name, value in params.items():
        if isinstance(value, str):
            if len(value) > MAX_PATH_ID_CHARS:
                raise HTTPProblem(422, f"{name}: at most {MAX_PATH_ID_CHARS} characters")
            try:
                from_wire(str, value, name)
            except ProtocolError as exc:
                raise HTTPProblem(422, str(exc)) from None


def as_record(data: dict[str, Any], cls: type[T], name: str) -> T:
    """A typed record from a parsed body; any wrong field is a 422 that names it."""
    try:
        return record_from_wire(cls, data, name)
    except ProtocolError as exc:
        raise HTTPProblem(422, str(exc)) from None


def checked_key(value: str | None, required: bool = True) -> str | None:
    """The Idempotency-Key header's value, checked."""
    if value is None:
        if required:
            raise HTTPProblem(400, "the Idempotency-Key header is required: a unique key per intended operation")
        return None
    if not KEY_MIN_CHARS <= len(value) <= KEY_MAX_CHARS or not value.isascii():
        raise HTTPProblem(400, f"Idempotency-Key must be {KEY_MIN_CHARS}-{KEY_MAX_CHARS} ASCII characters")
    return value


async def read_limited(chunks: AsyncIterator[bytes], limit: int = MAX_BODY_BYTES) -> bytes:
    """A body from its chunks, refusing at once (without reading on) one that grows past the limit."""
    raw = b""
    async for chunk in chunks:
        raw += chunk
        if len(raw) > limit:
            raise HTTPProblem(413, f"body exceeds {limit} bytes")
    return raw


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    return await read_limited(request.stream(), limit)


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    return json_object(await read_body(request, limit), request.headers.get("content-type", ""), limit)


async def parse(request: Request, cls: type[T], name: str = "body") -> T:
    return as_record(await read_json(request), cls, name)


def idempotency_key(request: Request, required: bool = True) -> str | None:
    return checked_key(request.headers.get("idempotency-key"), required)
