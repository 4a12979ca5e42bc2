"""Signed requests and callbacks between the chain and a partner platform (a rider platform, a marketplace), as
both sides compute them: HMAC-SHA256 under the app secret both hold, over `TIMESTAMP\\nNONCE\\nBODY\\n`, carried in
four headers named by the partner's prefix (`<Prefix>-Timestamp`, `-Nonce`, `-Signature`, `-App-Key`: the shape
Dada, Meituan, Ele.me and SF same-city use: an app key, a timestamp, a nonce and a signature). A message is believed
only within ±`TOLERANCE_S` of our clock; inside that window a replay is caught by the message's own id (a callback
id, an event id). No I/O; time is passed in."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

TOLERANCE_S = 300  # signed more than 5 minutes from our clock: stale (a replay or a broken clock)
NONCE_MAX_CHARS = 64


def message(timestamp_s: int, nonce: str, body: bytes) -> bytes:
    return f"{timestamp_s}\n{nonce}\n".encode() + body + b"\n"


def signature(secret: str, timestamp_s: int, nonce: str, body: bytes) -> str:
    return hmac.new(secret.encode(), message(timestamp_s, nonce, body), hashlib.sha256).hexdigest()


def request_signature_payload(method: str, path: str, body: bytes) -> bytes:
    """What a request's signature covers besides timestamp and nonce (the platform checks the same)."""
    return method.encode() + b" " + path.encode() + b"\n" + body


@dataclass(frozen=True, slots=True)
class Scheme:
    """One partner's headers (`prefix`: "Rider", "Mkt")."""
    prefix: str

    @property
    def timestamp_header(self) -> str:
        return f"{self.prefix}-Timestamp"

    @property
    def nonce_header(self) -> str:
        return f"{self.prefix}-Nonce"

    @property
    def signature_header(self) -> str:
        return f"{self.prefix}-Signature"

    @property
    def app_key_header(self) -> str:
        return f"{self.prefix}-App-Key"

    def signed_headers(self, app_key: str, secret: str, timestamp_s: int, nonce: str, body: bytes) -> dict[str, str]:
        return {self.app_key_header: app_key, self.timestamp_header: str(timestamp_s), self.nonce_header: nonce,
                self.signature_header: signature(secret, timestamp_s, nonce, body)}

    def verify(self, app_key: str, secret: str, headers: Mapping[str, str], body: bytes, now_s: int) -> str | None:
        """None when `body` (the raw bytes, before parsing) carries a valid signature made within ±TOLERANCE_S
        under this app; else why it is not believed."""
        stamp_h, nonce_h, sig_h, key_h = (self.timestamp_header, self.nonce_header, self.signature_header,
                                          self.app_key_header)
        stamp, nonce, sig, key = (headers.get(h) for h in (stamp_h, nonce_h, sig_h, key_h))
        if stamp is None or nonce is None or sig is None:
            return f"missing {stamp_h}, {nonce_h} or {sig_h}"
        if key != app_key:
            return f"{key_h} is not our app"
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or len(nonce) > NONCE_MAX_CHARS \
                or not sig.isascii():  # (compare_digest refuses non-ASCII text with a TypeError)
            return f"malformed {stamp_h} or {nonce_h}"
        if abs(now_s - int(stamp)) > TOLERANCE_S:
            return f"{stamp_h} is {int(stamp) - now_s} s away (allowed ±{TOLERANCE_S} s)"
        if not hmac.compare_digest(sig, signature(secret, int(stamp), nonce, body)):
            return f"{sig_h} does not verify with the app secret"
        return None
