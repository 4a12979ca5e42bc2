"""Merchant request signatures and provider answer/notification signatures (Ed25519, WeChat Pay v3 shape)."""
from __future__ import annotations

from cloud.services import pay_signatures as sig

MERCHANT, PROVIDER, OTHER = sig.new_private_text(), sig.new_private_text(), sig.new_private_text()
NOW = 1_800_000_000


def test_merchant_request_verifies_only_unchanged_and_fresh():
    key = sig.private_key(MERCHANT)
    keys = {"m1": sig.public_key(sig.public_text(key))}
    header = sig.authorization(key, "m1", "POST", "/v3/pay/transactions/native", NOW, "n1", b'{"a":1}')
    assert sig.verify_authorization(keys, header, "POST", "/v3/pay/transactions/native", b'{"a":1}', NOW) == "m1"
    assert sig.verify_authorization(keys, header, "POST", "/v3/pay/transactions/native", b'{"a":2}', NOW) is None
    assert sig.verify_authorization(keys, header, "GET", "/v3/pay/transactions/native", b'{"a":1}', NOW) is None
    assert sig.verify_authorization(keys, header, "POST", "/v3/pay/transactions/native", b'{"a":1}',
                                    NOW + sig.TOLERANCE_S + 1) is None
    forged = sig.authorization(sig.private_key(OTHER), "m1", "POST", "/x", NOW, "n1", b"")
    assert sig.verify_authorization(keys, forged, "POST", "/x", b"", NOW) is None
    assert sig.verify_authorization(keys, None, "POST", "/x", b"", NOW) is None


def test_provider_notification_signature():
    provider = sig.public_key(sig.public_text(sig.private_key(PROVIDER)))
    body = b'{"event_type":"TRANSACTION.SUCCESS"}'
    headers = sig.signed_headers(sig.private_key(PROVIDER), NOW, "nonce", body)
    assert sig.verify_signed(provider, headers, body, NOW) is None
    assert "does not verify" in sig.verify_signed(provider, headers, body + b" ", NOW)
    assert "away" in sig.verify_signed(provider, headers, body, NOW + 301)
    forged = sig.signed_headers(sig.private_key(OTHER), NOW, "nonce", body)
    assert "does not verify" in sig.verify_signed(provider, forged, body, NOW)
    assert "missing" in sig.verify_signed(provider, {}, body, NOW)


def test_notification_resource_opens_only_with_the_api_key_and_unaltered():
    key = sig.api_key(sig.new_private_text())
    sealed = sig.seal_resource(key, {"out_trade_no": "charge:o1", "amount": {"total": 561}}, "abcdef123456",
                               "transaction")
    assert sig.open_resource(key, sealed) == {"out_trade_no": "charge:o1", "amount": {"total": 561}}
    for bad in ({**sealed, "associated_data": "refund"}, {**sealed, "nonce": "abcdef123457"},
                {**sealed, "ciphertext": sealed["ciphertext"][:-4] + "AAAA"}, {**sealed, "algorithm": "none"}):
        try:
            sig.open_resource(key, bad)
        except ValueError:
            continue
        raise AssertionError(f"opened {bad}")
    try:
        sig.open_resource(bytes(32), sealed)
    except ValueError:
        pass
    else:
        raise AssertionError("opened with another key")
