"""Personal data (PIPL) through the real stack: phones sealed in PostgreSQL, hashed per store at the edge, masked in
every answer; export and erase; a clear phone left by an older version sealed at start; `freshmesh pii rotate`.

The proof is read from the bytes: every column of every table in PostgreSQL (as row_to_json, which shows bytea as
hex) and the store's SQLite files are searched for every usual spelling of the test phones, as text and as hex."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from cloud.embedded.process import free_port
from cloud.keys import KeyRing
from cloud.migrations import MIGRATIONS, migrate
from cloud.services.pii import Pii, rotate, seal_clear_phones
from cloud.services.sms import HttpSmsProvider
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from simulators.customer_auth import SignedIn
from simulators.sms_provider import start_in_thread
from tests.integration.harness import (
    SECRET_KEY,
    WallClock,
    eventually,
    fixed_keys,
    last_code,
    new_mobile,
    operator_headers,
    pay_in_wallet,
    running_cloud,
    top_up,
)

pytestmark = pytest.mark.integration
KEY, SECRET = "pii-sms-key", "pii-sms-secret"
STORE = "S002"
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
OPERATOR: dict[str, str] = {}  # an hq_admin's session: filled by the `chain` fixture once the cloud runs


def spellings(mobile: str) -> list[str]:
    """How a stored phone could show up: E.164, with the country code, the 11 digits, grouped with spaces."""
    return [f"+86{mobile}", f"86{mobile}", mobile, f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}"]


def leaks(text: str, mobiles: list[str]) -> list[str]:
    """Each spelling of each phone found in `text`, as text or as the hex of its bytes (bytea in row_to_json)."""
    low = text.lower()
    return [s for m in mobiles for s in spellings(m) if s in text or s.encode().hex() in low]


async def dump_postgres(conn) -> str:
    tables = [r["table_name"] for r in await conn.fetch(
        "select table_name from information_schema.tables where table_schema = current_schema() "
        "and table_type = 'BASE TABLE' order by table_name")]
    assert {"members", "sign_in_codes", "sign_in_locks", "sessions", "actor_journal"} <= set(tables)
    parts = []
    for table in tables:
        rows = await conn.fetch(f'select row_to_json(t)::text as j from "{table}" t')  # noqa: S608 - names from the catalog
        parts += [r["j"] for r in rows]
    return "\n".join(parts)


def sqlite_bytes(path: Path) -> bytes:
    return b"".join(f.read_bytes() for f in path.parent.iterdir() if f.name.startswith(path.name))


def sqlite_leaks(data: bytes, mobiles: list[str]) -> list[str]:
    return [s for m in mobiles for s in spellings(m) if s.encode() in data or s.encode("utf-16-le") in data]


async def sign_in(http, inbox, mobile: str) -> dict:
    sent = await http.post("/auth/codes", json={"phone": mobile})
    assert sent.status_code == 202, sent.text
    assert sent.json()["phone"] == f"{mobile[:3]}****{mobile[-4:]}"
    signed = await http.post("/auth/sessions", json={"phone": mobile, "code": await last_code(inbox, f"+86{mobile}")})
    assert signed.status_code == 201, signed.text
    return signed.json()


@pytest_asyncio.fixture(scope="module")
async def chain(stack, ray_runtime, tmp_path_factory):
    port = free_port()
    with start_in_thread(key=KEY, secret=SECRET, callback_url=f"http://127.0.0.1:{port}/callbacks/sms",
                         delay_ms=20) as sms:
        provider = HttpSmsProvider(sms.url, KEY, SECRET, WallClock())
        async with running_cloud(stack, prefix=f"pii{uuid.uuid4().hex[:6]}-", sms=provider, port=port) as (services, url):
            config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("pii-edge") / "data"),
                      "world": str(WORLD), "nats_url": stack.nats_address,
                      "nats_password": stack.store_credentials(STORE)[1]}
            box = await EdgeBox(config).start()
            try:
                async with httpx.AsyncClient(base_url=url, timeout=20) as http, \
                        httpx.AsyncClient(base_url=sms.url, headers={"X-Sms-Key": KEY}, timeout=5) as inbox, \
                        httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                          base_url="http://lane") as lane:
                    OPERATOR.update(await operator_headers(services))
                    yield services, http, inbox, box, lane
            finally:
                await box.stop()


async def cached(box, member_id: str):
    async with box.store_db.reader.execute("select member_id, phone_hash, phone_masked, member_code, stored_value_fen "
                                           "from members where member_id = ?", (member_id,)) as cur:
        return await cur.fetchone()


async def test_no_phone_in_clear_anywhere_masked_in_answers_found_by_hash_at_the_till(chain, stack):
    services, http, inbox, box, lane = chain
    signed_up, registered = new_mobile(), new_mobile()
    session, other = await sign_in(http, inbox, signed_up), await sign_in(http, inbox, registered)
    theirs = {"Authorization": f"Bearer {other['token']}"}
    member = (await http.get(f"/members/{other['member_id']}", headers=theirs)).json()
    assert member["phone"] == f"{registered[:3]}****{registered[-4:]}", member
    bought = await http.post(f"/members/{member['member_id']}/top-ups", json={"amount_fen": 3_000},
                             headers={"Idempotency-Key": uuid.uuid4().hex, **theirs})
    assert bought.status_code == 202  # a wallet payment to pay: no phone in it either
    me = await http.get("/me", headers={"Authorization": f"Bearer {session['token']}"})
    got = await http.get(f"/members/{member['member_id']}", headers=theirs)
    for answer in (me, got, bought):
        assert answer.status_code in (200, 201, 202)
        assert not leaks(answer.text, [signed_up, registered]), answer.text
    assert me.json()["phone"] == f"{signed_up[:3]}****{signed_up[-4:]}"
    await pay_in_wallet(services, bought.json()["pay"])  # credited on the provider's notification; stores are told

    async def in_cache():
        row = await cached(box, member["member_id"])
        return row if row and row[4] == 3_000 else None
    row = await eventually(in_cache, timeout_s=20)
    assert row and len(row[1]) == 32 and row[2] == f"{registered[:3]}****{registered[-4:]}"
    assert await eventually(lambda: cached(box, session["member_id"]), timeout_s=20)
    # the till: a typed phone in any spelling is found through this store's hash
    found = await lane.post("/lanes/1/member", json={"phone": f"{registered[:3]}-{registered[3:7]}-{registered[7:]}"})
    assert found.status_code == 200 and found.json()["member"]["member_id"] == member["member_id"], found.text
    assert not leaks(found.text, [registered])
    # the hash a store keeps is its own: not the cloud's lookup hash, not another store's
    conn = await asyncpg.connect(stack.database_url)
    try:
        cloud_hash = await conn.fetchval("select phone_hash from members where member_id = $1", member["member_id"])
        assert bytes(cloud_hash) != bytes(row[1])
        assert services.cloud.keys.store_lookup_key("S001") != services.cloud.keys.store_lookup_key(STORE)
        assert not leaks(await dump_postgres(conn), [signed_up, registered])
    finally:
        await conn.close()
    path = box.store_db.path
    assert not sqlite_leaks(sqlite_bytes(path), [signed_up, registered])
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for file in path.parent.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


async def test_export_gives_everything_and_erase_leaves_a_tombstone_the_ledger_still_adds_up(chain, stack):
    services, http, inbox, box, lane = chain
    mobile = new_mobile()
    session = await sign_in(http, inbox, mobile)
    member_id = session["member_id"]
    mine = {"Authorization": f"Bearer {session['token']}"}
    signed = SignedIn(member_id=member_id, token=session["token"], phone=mobile)
    assert (await top_up(services, http, signed, 5_000))["stored_value_fen"] == 5_000
    assert (await http.get(f"/members/{member_id}/export")).status_code == 401
    assert (await http.get(f"/members/{member_id}/export", headers={"Authorization": "Bearer no"})).status_code == 401
    for role, store in (("viewer", None), ("store_manager", "S002")):  # personal data is for HQ admins only
        other = await operator_headers(services, role, store)
        assert (await http.get(f"/members/{member_id}/export", headers=other)).status_code == 403
        assert (await http.delete(f"/members/{member_id}", headers=other)).status_code == 403
    assert (await http.delete(f"/members/{member_id}")).status_code == 401
    exported = (await http.get(f"/members/{member_id}/export", headers=OPERATOR)).json()
    assert exported["phone"] == f"+86{mobile}" and exported["member_code"] and exported["erased_at"] is None
    assert exported["ledger"]["stored_value_fen"] == 5_000 and exported["sessions"] == {"total": 1, "live": 1}
    assert exported["orders"] == [] and exported["till_sales"] == []
    assert leaks(json.dumps(exported), [mobile])  # the search finds a phone where there is one
    assert await eventually(lambda: cached(box, member_id), timeout_s=20)

    erased = await http.delete(f"/members/{member_id}", headers=OPERATOR)
    assert erased.status_code == 200, erased.text
    assert erased.json()["sessions_revoked"] == 1 and erased.json()["stored_value_fen"] == 5_000
    again = await http.delete(f"/members/{member_id}", headers=OPERATOR)  # idempotent: the same tombstone
    assert again.status_code == 200 and again.json()["erased_at"] == erased.json()["erased_at"]
    assert (await http.get("/me", headers={"Authorization": f"Bearer {session['token']}"})).status_code == 401
    assert (await http.get(f"/members/{member_id}", headers=mine)).status_code == 401  # the session ended with it
    after = (await http.get(f"/members/{member_id}/export", headers=OPERATOR)).json()
    audit = (await http.get("/operator/audit", headers=OPERATOR, params={"limit": 200})).json()["entries"]
    acts = [e["action"] for e in audit if e["target"] == f"member {member_id}"]
    assert acts.count("member.erase") == 2 and acts.count("member.export") == 2, acts  # who read or erased, and when
    assert not leaks(json.dumps(audit), [mobile])
    assert after["phone"] is None and after["member_code"] is None and after["erased_at"] is not None
    assert after["ledger"]["stored_value_fen"] == 5_000  # the ledger keeps its amounts under the id

    async def dropped():
        return await cached(box, member_id) is None
    assert await eventually(dropped, timeout_s=20), "the store kept the erased member in its cache"
    conn = await asyncpg.connect(stack.database_url)
    try:
        row = await conn.fetchrow("select * from members where member_id = $1", member_id)
        assert (row["phone_hash"], row["phone_sealed"], row["phone_masked"], row["member_code"]) == (None,) * 4
        assert row["erased_ms"] is not None
        assert not leaks(await dump_postgres(conn), [mobile])
    finally:
        await conn.close()
    report = await services.cloud.actors.audit([])
    assert not any(report.values()), report  # balances still sum to zero per asset
    # the phone signs in again as someone new
    fresh = await sign_in(http, inbox, mobile)
    assert fresh["registered"] is True and fresh["member_id"] != member_id


async def test_rotation_reseals_every_phone_under_the_new_first_key(chain, stack):
    services, http, inbox, _, _ = chain
    mobile = new_mobile()
    member_id = (await sign_in(http, inbox, mobile))["member_id"]
    base = fixed_keys(stack)
    derived = (base.sealing_kid, base.pii_keys[base.sealing_kid])
    new = ("k2", os.urandom(32))
    conn = await asyncpg.connect(stack.database_url)
    try:
        forward = Pii(KeyRing(SECRET_KEY, [new], store_passwords=stack.credentials.password))
        counts = await rotate(conn, forward, batch=7)  # small batches: the paging is exercised
        assert counts["resealed"] >= 1 and counts["resealed"] == counts["members"] and counts["rehashed"] == 0
        rows = await conn.fetch("select member_id, phone_sealed from members where phone_sealed is not null")
        assert all(Pii.kid_of(bytes(r["phone_sealed"])) == "k2" for r in rows)
        sealed = await conn.fetchval("select phone_sealed from members where member_id = $1", member_id)
        assert forward.open(bytes(sealed), row=member_id, field="phone") == f"+86{mobile}"
        assert (await rotate(conn, forward))["resealed"] == 0  # a rerun has nothing left to do
        # back under the tests' key, so the running cloud (and later tests) can open them again
        await rotate(conn, Pii(KeyRing(SECRET_KEY, [derived, new], store_passwords=stack.credentials.password)))
    finally:
        await conn.close()
    exported = (await http.get(f"/members/{member_id}/export", headers=OPERATOR)).json()
    assert exported["phone"] == f"+86{mobile}"


async def test_a_clear_phone_left_by_an_older_version_is_sealed_at_start_and_its_column_dropped(stack):
    database = f"pii_legacy_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(stack.database_url)
    await admin.execute(f'create database "{database}"')
    url = re.sub(r"/[^/?]+(\?|$)", rf"/{database}\1", stack.database_url, count=1)
    mobile = new_mobile()
    try:
        conn = await asyncpg.connect(url)
        try:  # the schema as version 6 left it, with a member registered in clear
            await conn.execute("create table schema_migrations (version int primary key, name text not null, "
                               "applied_at timestamptz not null default now())")
            for version, name, sql in MIGRATIONS:
                if version < 8:
                    await conn.execute(sql)
                    await conn.execute("insert into schema_migrations (version, name) values ($1, $2)", version, name)
            await conn.execute("insert into members (member_id, phone, member_code, created_ms) values "
                               "('M-old', $1, '0000000042', 1)", f"+86{mobile}")
            assert [v for v in await migrate(conn) if v <= 8] == [8]  # (and any later ones)
            assert await seal_clear_phones(conn, Pii(fixed_keys(stack))) == 1
            assert await seal_clear_phones(conn, Pii(fixed_keys(stack))) == 0  # done once
            columns = {r["column_name"] for r in await conn.fetch(
                "select column_name from information_schema.columns where table_name = 'members'")}
            assert "phone_unsealed" not in columns and "phone" not in columns
            row = await conn.fetchrow("select * from members where member_id = 'M-old'")
            pii = Pii(fixed_keys(stack))
            assert pii.open(bytes(row["phone_sealed"]), row="M-old", field="phone") == f"+86{mobile}"
            assert bytes(row["phone_hash"]) == pii.phone_hash(f"+86{mobile}") and row["member_code"] == "0000000042"
            assert not leaks(await dump_postgres(conn), [mobile])
        finally:
            await conn.close()
        # `freshmesh pii rotate` against it: a new first key, every phone re-sealed under it
        k3 = os.urandom(32)
        import base64
        env = {**os.environ, "DATABASE_URL": url, "FRESHMESH_SECRET_KEY": SECRET_KEY,
               "FRESHMESH_PII_KEYS": f"k3:{base64.b64encode(k3).decode()}"}
        done = subprocess.run([sys.executable, "-m", "simulators.cli", "pii", "rotate"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["resealed"] == 1 and report["sealing_kid"] == "k3" and mobile not in done.stdout + done.stderr
        missing = subprocess.run([sys.executable, "-m", "simulators.cli", "pii", "rotate"],
                                 env={**env, "FRESHMESH_PII_KEYS": ""}, capture_output=True, text=True, timeout=120)
        assert missing.returncode == 1 and "k3" in missing.stderr  # a dropped key still in use: said, not lost
    finally:
        await admin.execute(f'drop database if exists "{database}" with (force)')
        await admin.close()
