"""Signatures between the cloud (the merchant) and a wallet payment provider, shaped after WeChat Pay API v3.

- The merchant signs every API request with its own private key: the message is
  `METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`, sent as `Authorization: FRESHMESH-ED25519 mchid="…",
  nonce_str="…",timestamp="…",signature="…"`. The provider refuses (401) a request it cannot verify with the
  merchant's public key (registered with the provider beforehand).
- The provider signs its answers and its notifications with the provider's (platform's) private key: the message
  is `TIMESTAMP\\nNONCE\\nBODY\\n`, sent as `Pay-Timestamp`, `Pay-Nonce`, `Pay-Signature`. The merchant verifies
  them with the provider's public key, which it got out of band, and refuses a timestamp more than 5 minutes away
  (a replay of an old notification; inside the window a replay is caught by the transaction id).
- The provider also encrypts a notification's `resource` (AEAD_AES_256_GCM under the merchant's APIv3 key, a
  secret both sides hold, with the resource's own nonce and associated data): `seal_resource` / `open_resource`.
  The signature is checked first, on the raw body; the resource is opened after.
WeChat Pay uses RSA-SHA256 with certificates; here the keys are Ed25519 (the `cryptography` library does all of
it: no hand-rolled crypto). Keys travel as base64 of their 32 raw bytes. No I/O; time is passed in (it lives
in cloud/ because `protocol/` may not import `cryptography`).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SCHEME = "FRESHMESH-ED25519"
TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER = "Pay-Timestamp", "Pay-Nonce", "Pay-Signature"
TOLERANCE_S = 300  # as WeChat Pay: a notification or answer signed more than 5 minutes away is refused
NONCE_MAX_CHARS = 64
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def private_key(text: str) -> Ed25519PrivateKey:
    """A private key from base64 of its 32 raw bytes (ValueError when it is not one)."""
    return Ed25519PrivateKey.from_private_bytes(_raw(text))


def public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw(text))


def public_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """base64 of the raw public key (of a private key: its public half)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(pub.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def new_private_text() -> str:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat
    key = Ed25519PrivateKey.generate()
    return base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()


def _raw(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("an Ed25519 key is base64 of 32 bytes") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 key is 32 bytes, got {len(raw)}")
    return raw


def _sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode()


def _verify(key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# ---- the merchant's requests ------------------------------------------------------------------------------------
def request_message(method: str, path: str, timestamp_s: int, nonce: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{path}\n{timestamp_s}\n{nonce}\n".encode() + body + b"\n"


def authorization(key: Ed25519PrivateKey, mchid: str, method: str, path: str, timestamp_s: int, nonce: str,
                  body: bytes) -> str:
    """The `Authorization` header of a merchant request (`path` with its query string)."""
    signature = _sign(key, request_message(method, path, timestamp_s, nonce, body))
    return f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",timestamp="{timestamp_s}",signature="{signature}"'


def verify_authorization(keys: Mapping[str, Ed25519PublicKey], header: str | None, method: str, path: str,
                         body: bytes, now_s: int) -> str | None:
    """The merchant id of a correctly signed request, or None (unknown merchant, bad or stale signature)."""
    if not header or not header.startswith(SCHEME + " "):
        return None
    fields = dict(_AUTH_FIELD.findall(header[len(SCHEME) + 1:]))
    mchid, nonce, stamp, signature = (fields.get(k) for k in ("mchid", "nonce_str", "timestamp", "signature"))
    if not (mchid and nonce and stamp and signature) or mchid not in keys or not stamp.isdigit():
        return None
    if abs(now_s - int(stamp)) > TOLERANCE_S or len(nonce) > NONCE_MAX_CHARS:
        return None
    return mchid if _verify(keys[mchid], request_message(method, path, int(stamp), nonce, body), signature) else None


# ---- the provider's answers and notifications --------------------------------------------------------------------
def response_message(timestamp_s: int, nonce: str, body: bytes) -> bytes:
    return f"{timestamp_s}\n{nonce}\n".encode() + body + b"\n"


def signed_headers(key: Ed25519PrivateKey, timestamp_s: int, nonce: str, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp_s), NONCE_HEADER: nonce,
            SIGNATURE_HEADER: _sign(key, response_message(timestamp_s, nonce, body))}


def verify_signed(key: Ed25519PublicKey, headers: Mapping[str, str], body: bytes, now_s: int) -> str | None:
    """None when `body` carries the provider's valid signature made within `TOLERANCE_S`; else why not.
    Verify the raw bytes as received, before parsing them."""
    stamp, nonce, signature = (headers.get(h) for h in (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER))
    if stamp is None or nonce is None or signature is None:
        return f"missing {TIMESTAMP_HEADER}, {NONCE_HEADER} or {SIGNATURE_HEADER}"
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or len(nonce) > NONCE_MAX_CHARS:
        return f"malformed {TIMESTAMP_HEADER} or {NONCE_HEADER}"
    if abs(now_s - int(stamp)) > TOLERANCE_S:
        return f"{TIMESTAMP_HEADER} is {int(stamp) - now_s} s away (allowed ±{TOLERANCE_S} s)"
    if not _verify(key, response_message(int(stamp), nonce, body), signature):
        return f"{SIGNATURE_HEADER} does not verify with the provider's public key"
    return None


# ---- the notification's resource, encrypted -----------------------------------------------------------------------
ALGORITHM = "AEAD_AES_256_GCM"


def api_key(text: str) -> bytes:
    """The APIv3 key from base64 of its 32 raw bytes (ValueError when it is not one)."""
    return _raw(text)  # 32 bytes, like an Ed25519 key


def seal_resource(key: bytes, resource: dict, nonce: str, associated_data: str) -> dict:
    """The encrypted `resource` of a notification (`nonce`: 12 characters, new for every notification)."""
    sealed = AESGCM(key).encrypt(nonce.encode(), json.dumps(resource, separators=(",", ":")).encode(),
                                 associated_data.encode())
    return {"algorithm": ALGORITHM, "ciphertext": base64.b64encode(sealed).decode(), "nonce": nonce,
            "associated_data": associated_data, "original_type": associated_data}


def open_resource(key: bytes, sealed: dict) -> dict:
    """The resource inside; ValueError when it is not ours to open (another key, altered, malformed)."""
    if sealed.get("algorithm") != ALGORITHM:
        raise ValueError(f"resource algorithm {sealed.get('algorithm')!r}, expected {ALGORITHM}")
    try:
        plain = AESGCM(key).decrypt(str(sealed["nonce"]).encode(), base64.b64decode(sealed["ciphertext"]),
                                    str(sealed.get("associated_data", "")).encode())
    except (InvalidTag, KeyError, binascii.Error, TypeError) as exc:
        raise ValueError(f"resource does not open with our APIv3 key ({type(exc).__name__})") from None
    data = json.loads(plain)
    if not isinstance(data, dict):
        raise ValueError("resource: a JSON object expected")
    return data
