"""High availability (issue 18): cloud processes come and go, the actors and the work stay.

- Ray of this session listens on loopback only.
- An actor outlives the process that made it (detached), and a handle to an actor gone for good is looked up again.
- Two `python -m cloud` instances on one NATS / PostgreSQL / Ray; one stopped with SIGTERM: the other serves orders
  and applies the store's sales with no manual step; then a rolling restart of both under till, online and flash
  traffic: edge = cloud afterwards, nothing twice, every flash unit accounted.
- `kill -9` of `python -m cloud` (embedded servers, local Ray): nothing of it survives, and a restart on the same port
  serves at once (test_kill_9_leaves_no_orphan_and_a_restart_serves_at_once).

Store S039 is this module's (its box sells here); SKUs are the world's.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
import pytest_asyncio

from cloud.embedded.process import free_port
from cloud.keys import KeyRing
from cloud.runtime.hosting import retire_actors
from cloud.services.operators import Operators
from cloud.services.passes import FlashPasses
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from simulators.customer_auth import SimulatedPhones, sign_in
from simulators.sms_provider import start_in_thread
from tests.integration.harness import (
    OPERATOR_PASSWORD,
    SECRET_KEY,
    SMS_KEY,
    SMS_SECRET,
    WallClock,
    eventually,
    ids,
    new_mobile,
)

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S039"
ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "ha-admin-Password-0123456789"
CN = timezone(timedelta(hours=8))


def catalogue() -> list[dict]:
    return json.loads(WORLD.read_text())["catalogue"]


def packed(n: int = 0) -> dict:
    return [p for p in catalogue() if p["unit"] == "piece" and p["gtin"] and "online" in p["channels"]][n]


def non_loopback_listeners(pids: set[int]) -> list[str]:
    """Every listening socket of these processes that is not on a loopback address."""
    found = []
    for c in psutil.net_connections(kind="inet"):
        if c.status != psutil.CONN_LISTEN or c.pid not in pids:
            continue
        ip = c.laddr.ip.removeprefix("::ffff:")
        if not (ip.startswith("127.") or ip == "::1"):
            with contextlib.suppress(psutil.Error):
                found.append(f"{psutil.Process(c.pid).name()} (pid {c.pid}) on {c.laddr.ip}:{c.laddr.port}")
    return found


def family(pid: int) -> set[int]:
    proc = psutil.Process(pid)
    return {pid} | {c.pid for c in proc.children(recursive=True)}


# ---- Ray: loopback, detached, handles looked up again ------------------------------------------------------------
def _name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.NoSuchProcess:  # a worker that ended since the family was listed
        return ""


def test_the_local_ray_listens_on_loopback_only(stack, ray_runtime):
    """GCS, raylet, workers, agents and this driver: started by `ensure_ray` (as `freshmesh cloud` starts its Ray)."""
    ours = family(os.getpid())
    assert any("raylet" in _name(p) for p in ours)
    assert non_loopback_listeners(ours) == []


MAKER = """
import asyncio, json, sys
from actors.stock_pool import Grant
from cloud.runtime.calls import ActorCalls
from cloud.runtime.hosting import ensure_ray
ensure_ray()
async def main():
    calls = ActorCalls(sys.argv[1])
    (result,) = await calls.call(sys.argv[2], [Grant(id=sys.argv[3], store="S039", sku="HA-EGGS", qty=5)])
    print(json.dumps({"status": result.status, "pid": (await calls.info(sys.argv[2]))["pid"]}))
asyncio.run(main())
"""


async def test_an_actor_outlives_the_process_that_made_it(stack, ray_runtime, actor_prefix):
    """Another cloud process makes the actor and exits: the same incarnation still serves (no "owner died")."""
    from cloud.runtime.calls import ActorCalls
    from cloud.runtime.shard_map import ShardConfig
    name = ShardConfig(prefix=actor_prefix).stock_pool_name("HA-EGGS")
    env = {**os.environ, "RAY_ADDRESS": ray_runtime.get_runtime_context().gcs_address}
    made = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", MAKER, stack.database_url, name,
                                                    f"g-{uuid.uuid4().hex}"],
                                   env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    answer = json.loads(made.stdout.strip().splitlines()[-1])
    assert answer["status"] == "ok"
    calls = ActorCalls(stack.database_url)
    info = await calls.info(name)
    assert info["pid"] == answer["pid"] and not info["reconstructed"], "the actor died with its maker"


async def test_a_handle_to_an_actor_gone_for_good_is_looked_up_again(stack, ray_runtime, actor_prefix):
    from actors.stock_pool import Grant, PositionsQuery
    from cloud.runtime.calls import ActorCalls
    from cloud.runtime.shard_map import ShardConfig
    name = ShardConfig(prefix=actor_prefix).stock_pool_name("HA-MILK")
    calls = ActorCalls(stack.database_url)
    (first,) = await calls.call(name, [Grant(id=f"g-{uuid.uuid4().hex}", store=STORE, sku="HA-MILK", qty=3)])
    assert first.status == "ok"
    ray_runtime.kill(calls._handles[name], no_restart=True)  # as an owner's exit took non-detached actors along
    (second,) = await calls.call(name, [Grant(id=f"g-{uuid.uuid4().hex}", store=STORE, sku="HA-MILK", qty=4)],
                                 deadline_s=60)
    # "exists": the dying incarnation had journaled it before it went; the retry (same id) is told so, not applied twice
    assert second.status in ("ok", "exists"), second
    (position,) = await calls.ask(name, PositionsQuery(store=STORE, sku="HA-MILK"))
    assert position["escrow"] == 7  # the new incarnation rebuilt the first grant from the journal


# ---- two cloud instances ----------------------------------------------------------------------------------------
class CloudProcess:
    """`python -m cloud` on a port, against the session's NATS, PostgreSQL and Ray."""

    def __init__(self, env: dict, port: int, log_dir: Path, name: str) -> None:
        self.env, self.port, self.log_dir, self.name = env, port, log_dir, name
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CloudProcess:
        self.starts += 1
        log = open(self.log_dir / f"{self.name}-{self.starts}.log", "wb")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([sys.executable, "-m", "cloud", "--http-port", str(self.port), "--workers", "1"],
                                     env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    async def healthy(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.tail()
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/health")).status_code == 200:
                        return
                await asyncio.sleep(0.5)
        raise AssertionError(f"{self.name} not healthy: {self.tail()}")

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, 120)

    def tail(self) -> str:
        path = self.log_dir / f"{self.name}-{self.starts}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


async def any_of(clouds: list[CloudProcess], method: str, path: str, tries: int = 240, **kwargs) -> httpx.Response:
    """As a load balancer would: the first instance that answers (not 502/503), retrying with the same request
    (the same Idempotency-Key) while instances restart."""
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(tries):
            cloud = clouds[i % len(clouds)]
            try:
                r = await http.request(method, f"{cloud.url}{path}", **kwargs)
                if r.status_code not in (502, 503):
                    return r
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    raise AssertionError(f"no instance answered {method} {path}")


@pytest_asyncio.fixture(scope="module")
async def two_clouds(stack, ray_runtime, tmp_path_factory):
    logs, prefix = tmp_path_factory.mktemp("ha-logs"), f"ha{uuid.uuid4().hex[:6]}-"
    with start_in_thread(key=SMS_KEY, secret=SMS_SECRET, delay_ms=5) as sms:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHMESH_")}
        env.update(NATS_URL=stack.nats_url, DATABASE_URL=stack.database_url,
                   RAY_ADDRESS=ray_runtime.get_runtime_context().gcs_address, FRESHMESH_SECRET_KEY=SECRET_KEY,
                   FRESHMESH_STORE_CREDENTIALS=str(stack.credentials.path), FRESHMESH_ADMIN_PASSWORD=ADMIN_PASSWORD,
                   FRESHMESH_SMS_URL=sms.url, FRESHMESH_SMS_KEY=SMS_KEY, FRESHMESH_SMS_SECRET=SMS_SECRET,
                   XDG_STATE_HOME=str(logs),
                   # its actors apart from the session's others, retired at the end (detached: they outlive both)
                   FRESHMESH_ACTOR_PREFIX=prefix)
        clouds = [CloudProcess(env, free_port(), logs, "a"), CloudProcess(env, free_port(), logs, "b")]
        try:
            # one after the other: two first starts at once on a fresh NATS race to create the streams, and the
            # loser is refused ("insufficient storage resources": both reservations counted) - see the report
            for cloud in clouds:
                await cloud.start().healthy()
            operator = await hq_admin(stack, clouds)
            store = {"name": "FreshMesh HA", "lat": 31.21, "lon": 121.42, "slot_capacity": 500}
            r = await any_of(clouds, "PUT", f"/stores/{STORE}", json=store, headers=operator)
            assert r.status_code == 200, r.text
            for cloud in clouds:  # the other instance follows the world's change by itself
                assert await eventually(lambda cloud=cloud: knows_store(cloud), timeout_s=60), cloud.name
            config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                      "nats_url": stack.nats_address, "nats_password": stack.store_credentials(STORE)[1]}
            box = await EdgeBox(config).start()
            try:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                             base_url="http://lane") as lane:
                    assert await eventually(lambda: _online(box), timeout_s=30)
                    yield clouds, box, lane, sms, operator
            finally:
                await box.stop()
        finally:
            for c in clouds:
                c.kill()
            retire_actors(prefix)


async def hq_admin(stack, clouds) -> dict[str, str]:
    """An hq_admin of this module (the test database is shared: its first admin may be another module's)."""
    username = f"ha-admin-{uuid.uuid4().hex[:8]}"
    db = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    try:
        await Operators(db, WallClock(), ids()).create(username, OPERATOR_PASSWORD, "hq_admin", None, by_name="tests")
    finally:
        await db.close()
    r = await any_of(clouds, "POST", "/operator/sessions", json={"username": username, "password": OPERATOR_PASSWORD})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def knows_store(cloud) -> bool:
    r = await any_of([cloud], "GET", "/stores")
    return STORE in [s["store_id"] for s in r.json()["stores"]]


async def _online(box) -> bool:
    return box.actor.online


async def drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


async def sell(lane, gtin: str) -> str:
    await lane.post("/lanes/1/scan", json={"code": gtin})
    r = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**6})
    assert r.status_code == 201, r.text
    return r.json()["sale_id"]


async def cloud_on_hand(clouds, sku: str) -> int | None:
    r = await any_of(clouds, "GET", f"/stores/{STORE}/stock")
    assert r.status_code == 200, r.text
    return next((row["on_hand"] for row in r.json()["stock"] if row["sku"] == sku), None)


def slot() -> str:
    return (datetime.now(CN) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0).isoformat()


async def order(clouds, member, sku: str, key: str) -> httpx.Response:
    return await any_of(clouds, "POST", "/orders", json={"fulfilment": "pickup", "store_id": STORE,
                                                         "slot_start": slot(), "items": [{"sku": sku, "qty": 1}]},
                        headers={"Idempotency-Key": key, **member.headers})


async def signed_in(clouds, sms):
    async with httpx.AsyncClient(timeout=30) as http:
        return await sign_in(http, clouds[0].url, SimulatedPhones(sms.url, SMS_KEY), new_mobile())


async def till_sales_applied(stack, sale_ids: list[str]) -> int:
    conn = await asyncpg.connect(stack.database_url)
    try:
        return int(await conn.fetchval("select count(*) from till_sales where sale_id = any($1::text[])", sale_ids))
    finally:
        await conn.close()


async def test_stop_one_instance_and_the_other_serves_orders_and_applies_the_store_sales(two_clouds, stack):
    clouds, box, lane, sms, _ = two_clouds
    a, b = clouds
    product = packed(0)
    await box.actor.ask("receive", sku=product["sku"], qty=40)  # 16 escrowed for online
    assert await eventually(lambda: drained(box), timeout_s=60)
    member = await signed_in(clouds, sms)
    before = await order([a], member, product["sku"], uuid.uuid4().hex)
    assert before.status_code == 201 and before.json()["status"] == "reserved", before.text
    first_sale = await sell(lane, product["gtin"])
    assert await eventually(lambda: drained(box), timeout_s=60)

    assert await a.terminate() == 0, a.tail()  # a rolling deploy's stop
    sale = await sell(lane, product["gtin"])
    assert await eventually(lambda: drained(box), timeout_s=90), "the other instance did not apply the store's sale"
    assert await till_sales_applied(stack, [first_sale, sale]) == 2

    async def cloud_sees_it():
        return await cloud_on_hand([b], product["sku"]) == 38
    assert await eventually(cloud_sees_it, timeout_s=30), await cloud_on_hand([b], product["sku"])
    after = await order([b], member, product["sku"], uuid.uuid4().hex)  # no manual step: the actors are there
    assert after.status_code == 201 and after.json()["status"] == "reserved", after.text
    a.start()
    await a.healthy()


async def test_a_rolling_restart_under_traffic_loses_nothing_and_applies_nothing_twice(two_clouds, stack, ray_runtime):
    clouds, box, lane, sms, operator = two_clouds
    product = packed(1)
    since_ms = int(time.time() * 1000)
    await box.actor.ask("receive", sku=product["sku"], qty=300)
    assert await eventually(lambda: drained(box), timeout_s=60)
    flash_sku = packed(2)["sku"]
    now = datetime.now(UTC)
    created = await any_of(clouds, "POST", "/flash-sales", headers=operator,
                           json={"sku": flash_sku, "quantity": 500, "price_fen": 100, "per_member_limit": 1,
                                 "rate_per_s": 1000, "starts_at": (now - timedelta(minutes=1)).isoformat(),
                                 "ends_at": (now + timedelta(hours=1)).isoformat()})
    assert created.status_code == 201, created.text
    sale_id = created.json()["sale_id"]
    passes = FlashPasses(KeyRing(SECRET_KEY).pass_signing_key, WallClock())
    member = await signed_in(clouds, sms)
    sales: list[str] = []
    orders: dict[str, str] = {}  # idempotency key -> order id
    flash: dict[str, str] = {}  # fan -> flash order id
    stop = asyncio.Event()

    async def traffic() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sales.append(await sell(lane, product["gtin"]))
            if n % 2 == 0:
                key = uuid.uuid4().hex
                r = await order(clouds, member, product["sku"], key)
                assert r.status_code == 201, r.text
                orders[key] = r.json()["order_id"]
            fan = f"ha-fan-{uuid.uuid4().hex[:10]}"
            r = await any_of(clouds, "POST", f"/flash-sales/{sale_id}/orders", json={},
                             headers={"Idempotency-Key": uuid.uuid4().hex,
                                      "Authorization": f"Bearer {passes.issue(fan)[0]}"})
            if r.status_code == 201:
                flash[fan] = r.json()["order_id"]
            else:
                assert r.status_code == 429, r.text  # throttled is an answer; sold out cannot be (500 > attempts)
            await asyncio.sleep(0.2)

    running = asyncio.create_task(traffic())
    try:
        for cloud in reversed(clouds):  # b, then a: each stopped, started again on its port, serving before the next
            await asyncio.sleep(2)
            assert await cloud.terminate() == 0, cloud.tail()
            await asyncio.sleep(1)
            cloud.start()
            await cloud.healthy()
        await asyncio.sleep(2)
    finally:
        stop.set()
        await running
    assert len(sales) > 10 and orders and flash

    assert await eventually(lambda: drained(box), timeout_s=120), "the store's events were not all applied"
    assert await till_sales_applied(stack, sales) == len(sales)

    async def edge_equals_cloud():
        return await cloud_on_hand(clouds, product["sku"]) == 300 - len(sales)
    assert await eventually(edge_equals_cloud, timeout_s=30), (await cloud_on_hand(clouds, product["sku"]), len(sales))
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch("select seq, received_ms from edge_events where store_id = $1 and received_ms >= $2 "
                                "order by seq", STORE, since_ms)
        seqs = [r["seq"] for r in rows]
        assert len(seqs) == len(set(seqs)) and len(seqs) >= 2 * len(sales), "an event was applied twice or lost"
        applied_at = [r["received_ms"] for r in rows]  # through every handover, the store's order was kept
        assert applied_at == sorted(applied_at), "a store's event was applied before an earlier one"
        made = await conn.fetchval("select count(*) from orders where order_id = any($1::text[])", list(orders.values()))
        assert made == len(set(orders.values())) == len(orders), "an online order was lost or made twice"
    finally:
        await conn.close()
    status = (await any_of(clouds, "GET", f"/flash-sales/{sale_id}")).json()
    assert status["sold"] == len(flash), status
    assert status["sold"] + status["remaining"] == status["quantity"] == 500, status


async def test_kill_9_of_one_instance_mid_traffic_and_the_other_applies_every_sale_once_in_order(two_clouds, stack):
    """A bridge killed with a batch in hand: its shards go to the other instance from where their acks end."""
    clouds, box, lane, _, _ = two_clouds
    a, b = clouds
    product = packed(3)
    since_ms = int(time.time() * 1000)
    await box.actor.ask("receive", sku=product["sku"], qty=200)
    sales = [await sell(lane, product["gtin"]) for _ in range(10)]
    a.kill()  # kill -9, while the store's events flow
    sales += [await sell(lane, product["gtin"]) for _ in range(10)]
    assert await eventually(lambda: drained(box), timeout_s=120), "the surviving instance did not apply everything"
    assert await till_sales_applied(stack, sales) == len(sales)
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch("select seq, received_ms from edge_events where store_id = $1 and received_ms >= $2 "
                                "order by seq", STORE, since_ms)
    finally:
        await conn.close()
    assert len(rows) == len({r["seq"] for r in rows}) >= 2 * len(sales)
    assert [r["received_ms"] for r in rows] == sorted(r["received_ms"] for r in rows)

    async def edge_equals_cloud():
        return await cloud_on_hand([b], product["sku"]) == 200 - len(sales)
    assert await eventually(edge_equals_cloud, timeout_s=30)
    a.start()  # at once, on the same port
    await a.healthy()


# ---- kill -9 -----------------------------------------------------------------------------------------------------
def _alive(pids: set[int]) -> list[str]:
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.name()} (pid {pid}): {' '.join(p.cmdline())[:120]}")
    return out


def _start_embedded(port: int, workdir: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NATS_URL", "DATABASE_URL", "RAY_ADDRESS") and not k.startswith("FRESHMESH_")}
    env.update(FRESHMESH_ADMIN_PASSWORD=ADMIN_PASSWORD, FRESHMESH_SECRET_KEY=SECRET_KEY, XDG_STATE_HOME=str(workdir))
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "cloud", "--http-port", str(port), "--workers", "1",
                                 "--workdir", str(workdir)], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _serving(proc: subprocess.Popen, port: int, log: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"not serving: {log.read_text(errors='replace')[-3000:]}")


def _buy(port: int, sale_id: str) -> httpx.Response:
    fan = FlashPasses(KeyRing(SECRET_KEY).pass_signing_key, WallClock()).issue(f"ha-k9-{uuid.uuid4().hex[:8]}")[0]
    return httpx.post(f"http://127.0.0.1:{port}/flash-sales/{sale_id}/orders", json={}, timeout=60,
                      headers={"Idempotency-Key": uuid.uuid4().hex, "Authorization": f"Bearer {fan}"})


def _flash_sale(port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    admin = httpx.post(f"{base}/operator/sessions", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30)
    assert admin.status_code == 201, admin.text
    now = datetime.now(UTC)
    created = httpx.post(f"{base}/flash-sales", headers={"Authorization": f"Bearer {admin.json()['token']}"},
                         json={"sku": packed(0)["sku"], "quantity": 5, "price_fen": 100, "per_member_limit": 1,
                               "rate_per_s": 100, "starts_at": (now - timedelta(minutes=1)).isoformat(),
                               "ends_at": (now + timedelta(hours=1)).isoformat()}, timeout=60)
    assert created.status_code == 201, created.text
    return str(created.json()["sale_id"])


def test_kill_9_leaves_no_orphan_and_a_restart_serves_at_once(tmp_path):
    """`python -m cloud` with its embedded NATS and PostgreSQL and a local Ray; `kill -9`; nothing of it lives on; the
    same command on the same port and workdir serves at once. Its Ray listens on loopback only."""
    port, workdir, log = free_port(), tmp_path / "cloud", tmp_path / "cloud.log"
    proc = _start_embedded(port, workdir, log)
    try:
        _serving(proc, port, log)
        sale_id = _flash_sale(port)
        bought = _buy(port, sale_id)
        assert bought.status_code == 201, bought.text
        ours = family(proc.pid)
        names = {psutil.Process(p).name() for p in ours if psutil.pid_exists(p)}
        assert {"raylet", "gcs_server", "postgres", "nats-server"} <= names, names
        assert non_loopback_listeners(ours) == []
        proc.kill()
        proc.wait(30)
        deadline, alive = time.monotonic() + 20, _alive(ours)
        while alive and time.monotonic() < deadline:
            time.sleep(0.5)
            alive = _alive(ours)
        assert alive == [], alive
        proc = _start_embedded(port, workdir, log)  # at once, on the same port and data
        _serving(proc, port, log, timeout_s=300)
        again = _buy(port, sale_id)  # an order on the sale made before the kill: actors and data are back
        assert again.status_code == 201, again.text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
