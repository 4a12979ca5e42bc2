"""`freshmesh deploy nats-config` for real: the generated hub config runs a real nats-server with TLS (a throwaway CA
made here), a store's credentials publish its own subjects and are refused another store's, and a store's generated
leaf node passes `nats-server -t`, connects to the hub over TLS as that store and carries the box's JetStream
traffic - with the store's rights and no more. Its own servers on free ports (not the session's stack)."""
from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import ssl
import subprocess
import urllib.request
from pathlib import Path

import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud.deploy.cli import add_arguments, generate
from cloud.embedded import process
from cloud.embedded.nats import nats_server_binary
from cloud.messaging import streams
from protocol import subjects

pytestmark = pytest.mark.integration


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca_and_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a hub certificate for 127.0.0.1 / localhost signed by it (PEM files)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("freshmesh test CA")).issuer_name(_name("freshmesh test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("freshmesh-hub")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "hub.pem", directory / "hub.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["nats-config", *argv])


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Three stores' generated configuration and the hub running it with TLS."""
    root = tmp_path_factory.mktemp("deploy-nats")
    ca, cert, key = make_ca_and_cert(root)
    (root / "stores.csv").write_text("store_id,name\nS045,Test store\nS046,Other\nS047,Third\n")
    ports = {name: process.free_port() for name in ("client", "leaf", "monitor", "leaf_local")}
    out = root / "out"
    generate(_args(["--stores", str(root / "stores.csv"), "--out", str(out), "--host", "127.0.0.1",
                    "--client-port", str(ports["client"]), "--leaf-port", str(ports["leaf"]),
                    "--monitor-port", str(ports["monitor"]), "--leaf-listen-port", str(ports["leaf_local"]),
                    "--jetstream-dir", str(root / "js"), "--max-file-store", "4GB", "--max-memory-store", "64MB",
                    "--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca)]))
    hub = process.spawn([nats_server_binary(), "-c", str(out / "hub.conf")], root / "hub.log")
    try:
        process.wait_for_port(ports["client"], hub, "nats-server (hub)", root / "hub.log")
        yield {"out": out, "ports": ports, "ca": ca, "root": root}
    finally:
        process.stop(hub)


def _tls(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _box(out: Path, store_id: str) -> dict:
    return json.loads((out / "boxes" / f"{store_id}.box.json").read_text())


async def _store_client(url: str, store_id: str, password: str, errors: list[str], tls=None):
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))
    return await nats.connect(url, user=f"store_{store_id}", password=password, tls=tls, error_cb=on_error,
                              inbox_prefix=subjects.store_inbox_prefix(store_id), allow_reconnect=False,
                              connect_timeout=5)


async def _refused(errors: list[str], subject: str) -> bool:
    for _ in range(250):
        if any("permissions violation" in e.lower() and subject.lower() in e.lower() for e in errors):
            return True
        await asyncio.sleep(0.02)
    return False


async def _cloud(chain):
    url = (chain["out"] / "cloud.env").read_text().strip().removeprefix("NATS_URL=")
    assert url.startswith("tls://cloud:")
    client = await nats.connect(url, tls=_tls(chain["ca"]), connect_timeout=5, allow_reconnect=False)
    js = client.jetstream()
    await streams.ensure_streams(js)
    for store_id in ("S045", "S046"):
        await streams.ensure_store_consumer(js, store_id)
    return client


def test_generated_files_are_owner_only_and_hold_hashes_not_passwords(chain) -> None:
    out = chain["out"]
    hub = (out / "hub.conf").read_text()
    for store_id in ("S045", "S046", "S047"):
        box = _box(out, store_id)
        assert box["nats_password"] not in hub
        assert f'"store_{store_id}"' in hub
        for path in (out / "leaf" / f"{store_id}.conf", out / "boxes" / f"{store_id}.box.json"):
            assert path.stat().st_mode & 0o077 == 0, path
    assert (out / "cloud.env").stat().st_mode & 0o077 == 0 and (out / "hub.conf").stat().st_mode & 0o077 == 0
    assert "tls" in hub and "verify" not in hub.split("leafnodes")[0]  # TLS on the client port, passwords for auth


async def test_a_store_publishes_its_own_subjects_over_tls_and_is_refused_another_stores(chain) -> None:
    cloud = await _cloud(chain)
    errors: list[str] = []
    url = f"tls://127.0.0.1:{chain['ports']['client']}"
    store = await _store_client(url, "S045", _box(chain["out"], "S045")["nats_password"], errors, _tls(chain["ca"]))
    try:
        ack = await store.jetstream().publish(subjects.store_event("S045", "heartbeat"), b"x",
                                              headers={subjects.MSG_ID_HEADER: "dpl-own-1"})
        assert ack.stream == subjects.EVENTS_STREAM and not ack.duplicate
        forged = subjects.store_event("S046", "heartbeat")
        await store.publish(forged, b"x")
        await store.flush()
        assert await _refused(errors, forged), errors
        other_next = f"$JS.API.CONSUMER.MSG.NEXT.{subjects.CLOUD_MESSAGES_STREAM}.{subjects.cloud_messages_consumer('S046')}"
        await store.publish(other_next, b"1")
        await store.flush()
        assert await _refused(errors, other_next), errors
    finally:
        await store.close()
        await cloud.close()
    with pytest.raises(Exception):  # noqa: B017 - S046's user does not take S045's password
        await _store_client(url, "S046", _box(chain["out"], "S045")["nats_password"], [], _tls(chain["ca"]))


def test_leaf_configs_pass_the_servers_own_config_test(chain) -> None:
    for store_id in ("S045", "S046", "S047"):
        done = subprocess.run([nats_server_binary(), "-t", "-c", str(chain["out"] / "leaf" / f"{store_id}.conf")],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and "is valid" in done.stdout + done.stderr, done.stderr


def _leafz(monitor_port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/leafz", timeout=5) as response:
        return json.load(response).get("leafs") or []


async def test_a_store_leaf_carries_its_boxs_jetstream_traffic_with_the_stores_rights(chain) -> None:
    out, ports = chain["out"], chain["ports"]
    leaf = process.spawn([nats_server_binary(), "-c", str(out / "leaf" / "S045.conf")], chain["root"] / "leaf.log")
    cloud = await _cloud(chain)
    errors: list[str] = []
    try:
        process.wait_for_port(ports["leaf_local"], leaf, "nats-server (leaf)", chain["root"] / "leaf.log")
        for _ in range(500):  # the leaf logs in to the hub over TLS as store_S045
            if _leafz(ports["monitor"]):
                break
            await asyncio.sleep(0.02)
        (link,) = _leafz(ports["monitor"])
        assert link["name"] == "freshmesh-leaf-S045"
        box = _box(out, "S045")
        assert box["nats_url"] == f"nats://127.0.0.1:{ports['leaf_local']}"
        store = await _store_client(box["nats_url"], "S045", box["nats_password"], errors)
        try:
            ack = None
            for _ in range(100):  # until the hub has the leaf's interest in the store's inbox
                try:
                    ack = await store.jetstream().publish(subjects.store_event("S045", "heartbeat"), b"via-leaf",
                                                          headers={subjects.MSG_ID_HEADER: "dpl-leaf-1"}, timeout=1)
                    break
                except (nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError):
                    await asyncio.sleep(0.05)
            assert ack is not None and ack.stream == subjects.EVENTS_STREAM
            got = await cloud.jetstream().get_msg(subjects.EVENTS_STREAM, ack.seq)
            assert got.data == b"via-leaf"
            # the box pulls its own cloud messages through the leaf
            await cloud.jetstream().publish(subjects.cloud_message_subject("S045", "ack"), b"for-S045")
            inbound = await store.jetstream().pull_subscribe_bind(durable=subjects.cloud_messages_consumer("S045"),
                                                                  stream=subjects.CLOUD_MESSAGES_STREAM)
            messages = await inbound.fetch(1, timeout=5)
            assert messages[0].data == b"for-S045"
            await messages[0].ack()
            forged = subjects.store_event("S046", "heartbeat")
            await store.publish(forged, b"x")
            await store.flush()
            assert await _refused(errors, forged), errors
        finally:
            await store.close()
    finally:
        await cloud.close()
        process.stop(leaf)


def test_a_hub_cluster_config_passes_the_servers_config_test(chain, tmp_path) -> None:
    out = tmp_path / "cluster"
    generate(_args(["--count", "2", "--out", str(out), "--server-name", "hub-2", "--cluster-name", "freshmesh-hub",
                    "--cluster-routes", "hub-1:6222,hub-2:6222,hub-3:6222", "--jetstream-dir", str(tmp_path / "js"),
                    "--tls-cert", str(chain["root"] / "hub.pem"), "--tls-key", str(chain["root"] / "hub.key"),
                    "--tls-ca", str(chain["ca"])]))
    text = (out / "hub.conf").read_text()
    assert "nats-route://hub-3:6222" in text and '"name": "freshmesh-hub"' in text
    done = subprocess.run([nats_server_binary(), "-t", "-c", str(out / "hub.conf")], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0 and "is valid" in done.stdout + done.stderr, done.stderr
