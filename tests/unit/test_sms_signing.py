"""The SMS provider's signatures and delivery receipts (cloud/services/sms.py), pure: no server, no event loop."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from cloud.services.sms import (
    DELIVERY_BODY_MAX_BYTES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    parse_delivery,
    sign,
    signed_headers,
    verify,
    verify_headers,
)
from protocol.errors import ProtocolError

SECRET = "s3cret"
NOW = 1_767_225_600_000
BODY = b'{"message_id":"m-1","to":"13812345678","text":"code 123456"}'


def test_sign_is_hex_hmac_sha256_over_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == expected
    assert len(expected) == 64


def test_round_trip():
    assert verify(SECRET, NOW, sign(SECRET, NOW, BODY), BODY, now_ms=NOW)
    assert verify(SECRET, NOW, sign(SECRET, NOW, BODY).upper(), BODY, now_ms=NOW)  # hex in either case
    assert verify_headers(SECRET, signed_headers(SECRET, NOW, BODY), BODY, now_ms=NOW + 1_000)


def test_wrong_secret_refused():
    assert not verify("other", NOW, sign(SECRET, NOW, BODY), BODY, now_ms=NOW)


def test_tampered_body_refused():
    assert not verify(SECRET, NOW, sign(SECRET, NOW, BODY), BODY.replace(b"123456", b"654321"), now_ms=NOW)


def test_timestamp_is_signed_too():
    assert not verify(SECRET, NOW + 1, sign(SECRET, NOW, BODY), BODY, now_ms=NOW)


def test_stale_and_future_timestamps_refused():
    signature = sign(SECRET, NOW, BODY)
    assert verify(SECRET, NOW, signature, BODY, now_ms=NOW + 300_000)  # the edge of the window is inside
    assert not verify(SECRET, NOW, signature, BODY, now_ms=NOW + 300_001)  # stale: a replay
    assert not verify(SECRET, NOW, signature, BODY, now_ms=NOW - 300_001)  # from a clock far ahead
    assert not verify(SECRET, NOW, signature, BODY, now_ms=NOW + 2_000, tolerance_ms=1_000)


@pytest.mark.parametrize("signature", ["", "zz", "é" * 64, "0" * 64, sign(SECRET, NOW, BODY)[:-1]])
def test_malformed_signatures_refused_without_raising(signature):
    assert not verify(SECRET, NOW, signature, BODY, now_ms=NOW)


@pytest.mark.parametrize("headers", [
    {},
    {TIMESTAMP_HEADER: str(NOW)},
    {SIGNATURE_HEADER: sign(SECRET, NOW, BODY)},
    {TIMESTAMP_HEADER: "yesterday", SIGNATURE_HEADER: sign(SECRET, NOW, BODY)},
    {TIMESTAMP_HEADER: f"-{NOW}", SIGNATURE_HEADER: sign(SECRET, NOW, BODY)},
    {TIMESTAMP_HEADER: "9" * 40, SIGNATURE_HEADER: sign(SECRET, NOW, BODY)},
])
def test_missing_or_malformed_headers_refused(headers):
    assert not verify_headers(SECRET, headers, BODY, now_ms=NOW)


def test_parse_delivery():
    body = json.dumps({"message_id": "m-1", "status": "delivered", "at_ms": NOW, "provider": "simulated"}).encode()
    assert parse_delivery(body) == {"message_id": "m-1", "status": "delivered", "at_ms": NOW}
    assert parse_delivery(b'{"message_id":"m-2","status":"failed","at_ms":0}')["status"] == "failed"


@pytest.mark.parametrize(("body", "says"), [
    (b"", "not JSON"),
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "JSON object expected"),
    (b'{"status": "delivered", "at_ms": 1}', "message_id"),
    (b'{"message_id": "  ", "status": "delivered", "at_ms": 1}', "message_id"),
    (b'{"message_id": 7, "status": "delivered", "at_ms": 1}', "message_id"),
    (json.dumps({"message_id": "m" * 129, "status": "delivered", "at_ms": 1}).encode(), "longer than 128"),
    (b'{"message_id": "m-1", "status": "read", "at_ms": 1}', "status must be one of delivered, failed"),
    (b'{"message_id": "m-1", "at_ms": 1}', "status must be one of"),
    (b'{"message_id": "m-1", "status": "delivered"}', "at_ms"),
    (b'{"message_id": "m-1", "status": "delivered", "at_ms": "1"}', "at_ms"),
    (b'{"message_id": "m-1", "status": "delivered", "at_ms": true}', "at_ms"),
    (b'{"message_id": "m-1", "status": "delivered", "at_ms": -5}', "at_ms"),
    (b'{"message_id": "m-1", "status": "delivered", "at_ms": 1.5}', "at_ms"),
    (b" " * (DELIVERY_BODY_MAX_BYTES + 1), f"more than {DELIVERY_BODY_MAX_BYTES}"),
])
def test_parse_delivery_refuses_garbage_clearly(body, says):
    with pytest.raises(ProtocolError, match="delivery receipt") as caught:
        parse_delivery(body)
    assert says in str(caught.value)
    assert isinstance(caught.value, ValueError)
