"""A lean HTTP/1.1 load client: plain asyncio connections with keep-alive, requests pre-encoded.

A heavy client per request would measure the client; this one costs tens of microseconds per request, and the
flash-sale report says how fast it can go against a bare Starlette app in the same run (`ceiling_per_s`).
"""
from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode, urlsplit


class Connection:
    """One keep-alive connection; `request` sends and reads one response (status, headers, body)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.reader, self.writer = streams = await asyncio.open_connection(self.host, self.port)
        return streams

    async def request(self, raw: bytes) -> tuple[int, dict, bytes]:
        reader, writer = self.reader, self.writer
        if reader is None or writer is None:
            reader, writer = await self.open()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    def at_eof(self) -> bool:
        """The server has closed its end (a connection not open counts as closed)."""
        return self.reader is None or self.reader.at_eof()


def encode_post(host: str, path: str, body: dict, headers: dict | None = None, method: str = "POST") -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n{extra}\r\n").encode() + payload


def split_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


IDLE_EXPIRY_S = 4.0


def encode_get(host: str, path: str, headers: dict | None = None) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


class LeanResponse:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code, self.content = status, body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.content) if self.content else None


CLIENT_ERRORS = (OSError, asyncio.IncompleteReadError, TimeoutError)  # what a request through LeanClients may raise


class LeanClients:
    """`get`/`post`/`delete` like an httpx client, on `Connection`s: keep-alive pools per server, so that the
    simulators and load runs are never the busiest process on the box (httpx cost several times more CPU per
    request, and its pool is scanned on every request). Only what the simulators send: JSON bodies, query
    parameters, headers; a stale keep-alive connection is replaced (and a GET retried once)."""

    def __init__(self, timeout: float = 30) -> None:
        self.timeout = timeout
        self._idle: dict[tuple[str, int], list[tuple[Connection, float]]] = {}  # with when each was last used

    async def _send(self, url: str, make, retry: bool) -> LeanResponse:
        parts = urlsplit(url)
        key = (parts.hostname or "127.0.0.1", parts.port or 80)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        idle = self._idle.setdefault(key, [])
        now = time.monotonic()
        # servers close idle keep-alives (uvicorn: after 5 s); one they closed already shows EOF
        while idle and (now - idle[-1][1] > IDLE_EXPIRY_S or idle[-1][0].at_eof()):
            idle.pop()[0].close()
        conn = idle.pop()[0] if idle else Connection(*key)
        try:
            status, _, body = await asyncio.wait_for(conn.request(make(key[0], path)), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            conn.close()
            if not retry:
                raise
            return await self._send(url, make, retry=False)
        if conn.writer is not None:
            idle.append((conn, time.monotonic()))
        return LeanResponse(status, body)

    async def get(self, url: str, params: dict | None = None, headers: dict | None = None) -> LeanResponse:
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        return await self._send(url, lambda host, path: encode_get(host, path, headers), retry=True)

    async def post(self, url: str, json: dict | None = None, headers: dict | None = None) -> LeanResponse:
        body = {} if json is None else json
        return await self._send(url, lambda host, path: encode_post(host, path, body, headers), retry=False)

    async def put(self, url: str, json: dict | None = None, headers: dict | None = None) -> LeanResponse:
        body = {} if json is None else json
        return await self._send(url, lambda host, path: encode_post(host, path, body, headers, "PUT"), retry=False)

    async def delete(self, url: str, headers: dict | None = None) -> LeanResponse:
        return await self._send(url, lambda host, path: encode_get(host, path, headers).replace(b"GET ", b"DELETE ", 1),
                                retry=False)

    async def __aenter__(self) -> LeanClients:
        return self

    async def __aexit__(self, *exc) -> None:
        for conns in self._idle.values():
            for conn, _ in conns:
                conn.close()
        self._idle.clear()
