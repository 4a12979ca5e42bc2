"""The wallet provider from the environment: unset means none; half-configured refuses to start."""
from __future__ import annotations

import pytest

from cloud.keys import KeyRing
from cloud.services import pay_signatures as sig
from cloud.services.wallet import wallet_from_env
from protocol.clock import ManualClock

KEYS = KeyRing("unit-test-master-secret-0123456789-abcdef")


def test_no_url_no_wallet(monkeypatch):
    monkeypatch.delenv("FRESHMESH_PAY_URL", raising=False)
    assert wallet_from_env(ManualClock(0), KEYS) is None


def test_half_configured_refuses_to_start(monkeypatch):
    monkeypatch.setenv("FRESHMESH_PAY_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("FRESHMESH_PAY_PROVIDER_PUBLIC_KEY", raising=False)
    monkeypatch.setenv("FRESHMESH_PAY_NOTIFY_URL", "http://127.0.0.1:8/callbacks/pay")
    with pytest.raises(RuntimeError, match="FRESHMESH_PAY_PROVIDER_PUBLIC_KEY"):
        wallet_from_env(ManualClock(0), KEYS)
    monkeypatch.setenv("FRESHMESH_PAY_PROVIDER_PUBLIC_KEY", "not-a-key")
    with pytest.raises(RuntimeError, match="not base64 of 32 bytes"):
        wallet_from_env(ManualClock(0), KEYS)


def test_configured_wallet_signs_with_the_key_derived_from_the_master(monkeypatch):
    provider = sig.public_text(sig.private_key(sig.new_private_text()))
    monkeypatch.setenv("FRESHMESH_PAY_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("FRESHMESH_PAY_PROVIDER_PUBLIC_KEY", provider)
    monkeypatch.setenv("FRESHMESH_PAY_NOTIFY_URL", "http://127.0.0.1:8/callbacks/pay")
    monkeypatch.delenv("FRESHMESH_PAY_MERCHANT_KEY", raising=False)
    wallet = wallet_from_env(ManualClock(0), KEYS)
    assert wallet is not None and wallet.base_url == "http://127.0.0.1:9" and wallet.mchid == "freshmesh"
    assert sig.public_text(wallet._key) == sig.public_text(sig.private_key(KEYS.pay_merchant_key))
