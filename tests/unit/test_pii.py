"""Sealing, keyed hashes and the key ring (cloud/keys.py, cloud/services/pii.py): pure, no database."""
from __future__ import annotations

import base64
import os

import pytest

from cloud.keys import KeyConfigError, KeyRing, parse_pii_keys
from cloud.services.pii import Pii, Unsealable
from cloud.store_credentials import CredentialBook
from protocol import phones
from protocol.policy import member_lookup_key

MASTER = "unit-test-master-secret-0123456789abcdef"
PHONE = "+8613800138000"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_a_sealed_phone_opens_for_its_row_and_field_only():
    pii = Pii(KeyRing(MASTER))
    sealed = pii.seal(PHONE, row="M1", field="phone")
    assert PHONE.encode() not in sealed and b"13800138000" not in sealed
    assert pii.open(sealed, row="M1", field="phone") == PHONE
    assert pii.seal(PHONE, row="M1", field="phone") != sealed  # a fresh nonce every time
    with pytest.raises(Unsealable):
        pii.open(sealed, row="M2", field="phone")  # moved to another member's row
    with pytest.raises(Unsealable):
        pii.open(sealed, row="M1", field="email")  # moved to another field
    for i in range(len(sealed)):  # any byte changed, the kid and nonce included
        tampered = bytearray(sealed)
        tampered[i] ^= 0x01
        with pytest.raises(Unsealable):
            pii.open(bytes(tampered), row="M1", field="phone")
    with pytest.raises(Unsealable):
        pii.open(sealed[:-1], row="M1", field="phone")


def test_rotation_the_first_key_seals_every_key_opens_a_dropped_key_does_not():
    k1, k2 = os.urandom(32), os.urandom(32)
    old = Pii(KeyRing(MASTER, parse_pii_keys(f"k1:{b64(k1)}")))
    sealed_k1 = old.seal(PHONE, row="M1", field="phone")
    assert Pii.kid_of(sealed_k1) == "k1"
    both = Pii(KeyRing(MASTER, parse_pii_keys(f"k2:{b64(k2)},k1:{b64(k1)}")))
    assert both.open(sealed_k1, row="M1", field="phone") == PHONE  # the old key still opens
    resealed = both.seal(PHONE, row="M1", field="phone")
    assert Pii.kid_of(resealed) == "k2"
    only_new = Pii(KeyRing(MASTER, parse_pii_keys(f"k2:{b64(k2)}")))
    assert only_new.open(resealed, row="M1", field="phone") == PHONE
    with pytest.raises(Unsealable, match="k1"):
        only_new.open(sealed_k1, row="M1", field="phone")
    # a key of the same id but other bytes does not open either
    with pytest.raises(Unsealable):
        Pii(KeyRing(MASTER, parse_pii_keys(f"k1:{b64(k2)}"))).open(sealed_k1, row="M1", field="phone")


def test_the_derived_key_stays_able_to_open_and_a_previous_master_helps_rotate_it():
    derived_only = Pii(KeyRing(MASTER))
    sealed = derived_only.seal(PHONE, row="M1", field="phone")
    configured = Pii(KeyRing(MASTER, parse_pii_keys(f"k9:{b64(os.urandom(32))}")))
    assert configured.keys.sealing_kid == "k9" and configured.open(sealed, row="M1", field="phone") == PHONE
    new_master = "another-master-secret-0123456789abcdef"
    with pytest.raises(Unsealable):
        Pii(KeyRing(new_master)).open(sealed, row="M1", field="phone")
    assert Pii(KeyRing(new_master, previous_master=MASTER)).open(sealed, row="M1", field="phone") == PHONE


def test_keys_are_the_same_in_every_process_and_unrelated_across_purposes():
    a, b = KeyRing(MASTER), KeyRing(MASTER)
    assert (a.sign_in_code_key, a.phone_lookup_key, a.pass_signing_key) == \
           (b.sign_in_code_key, b.phone_lookup_key, b.pass_signing_key)
    keys = {a.sign_in_code_key, a.phone_lookup_key, a.pass_signing_key, *a.pii_keys.values()}
    assert len(keys) == 4 and all(len(k) == 32 for k in keys)
    assert KeyRing("x" * 40).phone_lookup_key != a.phone_lookup_key
    assert MASTER not in repr(a) and not any(b64(k) in repr(a) for k in keys)


def test_phone_hashes_are_keyed_and_each_store_has_its_own():
    pii = Pii(KeyRing(MASTER))
    assert pii.phone_hash(PHONE) == pii.phone_hash(phones.normalise("138 0013 8000"))
    assert pii.phone_hash(PHONE) != Pii(KeyRing("y" * 40)).phone_hash(PHONE)
    passwords = {"S001": "first-store-random-password", "S002": "second-store-random-password"}
    ring = KeyRing(MASTER, store_passwords=passwords.get)
    s1, s2 = ring.store_lookup_key("S001"), ring.store_lookup_key("S002")
    assert s1 != s2 and s1 != ring.phone_lookup_key
    # what the store box computes from its own NATS password is what the cloud computes from its credential book
    assert s1 == member_lookup_key(passwords["S001"], "S001")
    assert phones.lookup_hash(s1, PHONE) != phones.lookup_hash(s2, PHONE)
    assert KeyRing(MASTER).store_lookup_key("S001") is None  # no credentials: no store hashes
    assert ring.store_lookup_key("S999") is None  # a store never provisioned


@pytest.mark.parametrize(("setting", "error"), [
    ("k1", "kid:base64key"), ("bad kid!:AAAA", "kid:base64key"), ("k1:not base64!", "not base64"),
    (f"k1:{b64(b'short')}", "has 5 bytes"), (f"k1:{b64(bytes(32))},k1:{b64(bytes(32))}", "appears twice"),
])
def test_a_bad_key_setting_is_refused_without_showing_the_key(setting, error):
    with pytest.raises(KeyConfigError, match=error) as refused:
        parse_pii_keys(setting)
    assert b64(bytes(32)) not in str(refused.value)


def test_the_master_secret_is_required_and_long_enough(tmp_path):
    book = CredentialBook(tmp_path / "store-credentials.json")
    book.provision(["S001"])
    with pytest.raises(KeyConfigError, match="not set"):
        KeyRing.from_env({})
    with pytest.raises(KeyConfigError, match="at least 32"):
        KeyRing.from_env({"FRESHMESH_SECRET_KEY": "short"})
    ring = KeyRing.from_env({"FRESHMESH_SECRET_KEY": MASTER, "FRESHMESH_PII_KEYS": f"a:{b64(bytes(16))}",
                             "FRESHMESH_STORE_CREDENTIALS": str(book.path)})
    assert ring.sealing_kid == "a" and len(ring.pii_keys) == 2 and ring.store_lookup_key("S001") is not None


def test_the_cloud_keeps_a_made_up_master_secret_owner_only_and_the_same_across_restarts(tmp_path):
    import stat

    from cloud.main import secret_key_beside
    first = secret_key_beside(tmp_path)
    assert len(first) >= 32 and secret_key_beside(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    KeyRing(first)  # usable as the master


def test_the_cloud_refuses_a_configured_database_without_a_configured_master(monkeypatch, capsys):
    from types import SimpleNamespace

    from cloud.main import run
    monkeypatch.setenv("DATABASE_URL", "postgresql://nowhere/db")
    monkeypatch.setenv("NATS_URL", "nats://nowhere:4222")
    monkeypatch.delenv("FRESHMESH_SECRET_KEY", raising=False)
    assert run(SimpleNamespace(http_port=0, workers=1, world=None, workdir=None)) == 2
    assert "FRESHMESH_SECRET_KEY" in capsys.readouterr().err
