"""Helpers for integration tests: a real cloud (services + uvicorn on a free port) and a store's NATS link."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import time
import uuid

import asyncpg
import httpx
import nats
import uvicorn

from cloud.embedded.process import free_port
from cloud.http.app import build_app
from cloud.keys import KeyRing
from cloud.runtime.hosting import retire_actors
from cloud.runtime.shard_map import ShardConfig
from cloud.services import pay_signatures
from cloud.services.riders import HttpRiderPlatform
from cloud.services.sms import HttpSmsProvider
from cloud.services.wallet import HttpPayProvider
from cloud.wiring import start_services
from cloud.world import World
from protocol import codec, subjects
from protocol.ids import IdFactory
from protocol.order_lifecycle import PAID_STATUSES
from simulators import pay_provider, rider_platform
from simulators.customer_auth import SignedIn, SimulatedPhones, sign_in
from simulators.sim_http import KEEP_ALIVE_S
from simulators.sms_provider import start_in_thread

OPERATOR_PASSWORD = "test-operator-password"
SECRET_KEY = "test-master-secret-0123456789-abcdefghijklmnop"  # a fixed key ring for tests (see cloud/keys.py)


def fixed_keys(stack) -> KeyRing:
    """The tests' key ring: the fixed master, and the stack's store credentials (stores' member lookup keys)."""
    return KeyRing(SECRET_KEY, store_passwords=stack.credentials.password)


def ids() -> IdFactory:
    return IdFactory(lambda: time.time_ns() // 1_000_000, lambda: int.from_bytes(os.urandom(10), "big"))


def envelope(store_id: str, seq: int) -> dict:
    return {"event_id": ids().new(), "store_id": store_id, "seq": seq, "wall_ms": time.time_ns() // 1_000_000,
            "mono_ms": time.monotonic_ns() // 1_000_000}


SMS_KEY, SMS_SECRET = "sim-key", "sim-secret-for-tests"
PAY_MCHID = "freshmesh-test"
PAY_PROVIDER_KEY = pay_signatures.new_private_text()  # the simulated wallet provider's signing key, this test run
RIDERS_APP_KEY, RIDERS_SECRET = "freshmesh-test", uuid.uuid4().hex  # the simulated rider platform's app, this run


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


@contextlib.asynccontextmanager
async def running_cloud(stack, prefix: str, reservation_ttl_ms: int | None = None, sms=None, port: int | None = None,
                        pay_settings: dict | None = None, rider_settings: dict | None = None,
                        marketplaces: list | None = None):
    """`sms`: the SMS provider adapter; by default the simulated provider runs beside the cloud (its own service on
    its own thread) so that customers can sign in (`customer()`); `port`: when the caller needs the URL before the
    cloud runs (a provider's callback URL). The simulated wallet provider always runs beside it too (`pay_settings`:
    its `simulators.pay_provider.Settings` knobs); `services.payments.wallet.sim` is its running service. `marketplaces`:
    the marketplace adapters the cloud pushes stock to (none by default)."""
    port = port or free_port()
    with contextlib.ExitStack() as own:
        if sms is None:
            simulated = own.enter_context(start_in_thread(key=SMS_KEY, secret=SMS_SECRET, delay_ms=5,
                                                          callback_url=f"http://127.0.0.1:{port}/callbacks/sms"))
            sms = HttpSmsProvider(simulated.url, SMS_KEY, SMS_SECRET, WallClock())
            sms.inbox = SimulatedPhones(simulated.url, SMS_KEY)  # where test customers read their codes
        merchant_key, api_key = fixed_keys(stack).pay_merchant_key, fixed_keys(stack).pay_api_key
        settings = pay_provider.Settings(PAY_MCHID, pay_signatures.public_text(pay_signatures.private_key(merchant_key)),
                                         PAY_PROVIDER_KEY, api_key, **{"notify_delay_ms": 20, "refund_delay_ms": 20,
                                                              **(pay_settings or {})})
        sim_pay = own.enter_context(pay_provider.start_in_thread(settings))
        wallet = HttpPayProvider(sim_pay.url, PAY_MCHID, merchant_key,
                                 pay_signatures.public_text(pay_signatures.private_key(PAY_PROVIDER_KEY)),
                                 f"http://127.0.0.1:{port}/callbacks/pay", WallClock(), api_key=api_key)
        wallet.sim = sim_pay
        # the simulated rider platform too (`rider_settings`: its knobs; fast by default); `.sim` is the service
        sim_riders = own.enter_context(rider_platform.start_in_thread(rider_platform.Settings(
            RIDERS_APP_KEY, RIDERS_SECRET, **{"accept_delay_ms": 100, "step_ms": 50, **(rider_settings or {})})))
        riders = HttpRiderPlatform(sim_riders.url, RIDERS_APP_KEY, RIDERS_SECRET,
                                   f"http://127.0.0.1:{port}/callbacks/rider", WallClock())
        riders.sim = sim_riders
        async with _serving(stack, prefix, reservation_ttl_ms, sms, port, wallet, riders, marketplaces or []) as running:
            yield running


async def pay_in_wallet(services, pay: dict, notify: str = "send") -> dict:
    """The customer pays a wallet payment in the simulated provider's wallet app (`pay`: what the cloud answered:
    `{"prepay_id", …}`); `notify`: "send", "drop" (the notification is lost) or "twice"."""
    sim = services.payments.wallet.sim
    async with httpx.AsyncClient(base_url=sim.url) as wallet_app:
        r = await wallet_app.post(f"/sim/pay/{pay['prepay_id']}", json={"notify": notify})
    assert r.status_code == 200, r.text
    return r.json()


async def pay_by_wallet(services, http, member: SignedIn, order_id: str, notify: str = "send") -> dict:
    """Pay an order with the simulated wallet: the cloud creates the provider payment (202), the customer pays it
    in the wallet app, the provider's notification makes the order paid. Returns the paid order."""
    r = await http.post(f"/orders/{order_id}/pay", json={"method": "wallet_sim"}, headers=member.headers)
    assert r.status_code in (200, 202), r.text
    if r.status_code == 202:
        await pay_in_wallet(services, r.json()["payment"]["pay"], notify)

    async def paid():
        order = (await http.get(f"/orders/{order_id}", headers=member.headers)).json()
        return order if order["status"] in PAID_STATUSES else None
    order = await eventually(paid, timeout_s=20)
    assert order, f"order {order_id} was never paid"
    return order


async def top_up(services, http, member: SignedIn, amount_fen: int, key: str | None = None) -> dict:
    """Stored value bought the only way it comes in online: a wallet payment, paid, credited on the provider's
    signed notification. Returns the member's view once credited."""
    r = await http.post(f"/members/{member.member_id}/top-ups", json={"amount_fen": amount_fen, "method": "wallet_sim"},
                        headers={**member.headers, "Idempotency-Key": key or uuid.uuid4().hex})
    assert r.status_code in (200, 202), r.text
    made = r.json()
    if made["state"] != "done":
        await pay_in_wallet(services, made["pay"])

    async def credited():
        view = (await http.get(f"/members/{member.member_id}/top-ups/{made['top_up_id']}",
                               headers=member.headers)).json()
        return view if view["state"] == "done" else None
    done = await eventually(credited, timeout_s=15)
    assert done, f"top-up {made['top_up_id']} was never credited"
    return done


async def customer(services, http, phone: str | None = None) -> SignedIn:
    """A member signed in through the cloud's sign-in endpoints and the simulated provider (a new phone unless
    one is given); `.headers` authorises their requests."""
    inbox = getattr(services.identity.sms, "inbox", None)
    assert inbox is not None, "customer() needs the cloud's default simulated SMS provider (running_cloud(sms=None))"
    return await sign_in(http, str(http.base_url).rstrip("/"), inbox, phone or new_mobile())


def new_mobile() -> str:
    return f"13{uuid.uuid4().int % 10**9:09d}"


async def last_code(inbox, e164: str) -> str:
    """The code in the newest message the simulated provider "sent" to `e164` (`inbox`: an httpx client on it)."""
    messages = (await inbox.get("/v1/messages", params={"to": e164})).json()["messages"]
    return re.search(r"\b(\d{6})\b", messages[-1]["text"]).group(1)


_serving_prefixes: collections.Counter[str] = collections.Counter()  # clouds running now, by actor prefix


async def newest_book_world(stack) -> World:
    """The default world, its rule book numbered above every book a cloud of this session stored before.

    Each module's cloud starts from the default world (an explicit world: the newest version), but the stores'
    inboxes on the session's NATS still hold the books earlier modules' clouds sent, some of them changed and
    numbered higher (a test's PUT). A new box for such a store would keep that newer book and ignore this cloud's
    (a store keeps the newest book it was sent): this module's prices would be another module's."""
    world = World.load()
    conn = await asyncpg.connect(stack.database_url)
    try:
        newest = await conn.fetchval("select max((data::jsonb -> 'rule_book' ->> 'version')::bigint) from world_versions")
    except asyncpg.UndefinedTableError:  # the session's first cloud: no world stored yet
        newest = None
    finally:
        await conn.close()
    if newest is None or newest < world.rule_book.version:
        return world
    data = world.to_data()
    return World.from_data({**data, "rule_book": {**data["rule_book"], "version": newest + 1}})


@contextlib.asynccontextmanager
async def _serving(stack, prefix: str, reservation_ttl_ms: int | None, sms, port: int, wallet=None, riders=None,
                   marketplaces: list | None = None):
    services = await start_services(await newest_book_world(stack), stack.database_url, stack.nats_url,
                                    ShardConfig(prefix=prefix), background=True, reservation_ttl_ms=reservation_ttl_ms,
                                    explicit_world=True, sms=sms, keys=fixed_keys(stack), wallet=wallet,
                                    riders=riders, marketplaces=marketplaces or [])
    server = uvicorn.Server(uvicorn.Config(build_app(services), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", timeout_keep_alive=KEEP_ALIVE_S))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    _serving_prefixes[prefix] += 1
    try:
        yield services, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        await services.stop()
        _serving_prefixes[prefix] -= 1
        # detached actors outlive their cloud: the module's go with the last cloud using them (a second API
        # process on the same prefix leaves them to the first), never the session's others
        if prefix and not _serving_prefixes[prefix]:
            retire_actors(prefix)


async def operator_headers(services, role: str = "hq_admin", store_id: str | None = None,
                           username: str | None = None) -> dict[str, str]:
    """Headers of a signed-in operator: a new account of `role` (a store_manager needs `store_id`) made through the
    service, as `freshmesh operators add` makes one, signed in with OPERATOR_PASSWORD. Usernames are unique per
    call: every test module's cloud shares the one test database."""
    username = username or f"{role.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    await services.operators.create(username, OPERATOR_PASSWORD, role, store_id, by_name="tests")
    session = await services.operators.sign_in(username, OPERATOR_PASSWORD)
    return {"Authorization": f"Bearer {session['token']}"}


class StoreLink:
    """What an edge box does on NATS, done by hand: publish events as its own user, pull its commands."""

    def __init__(self, stack, store_id: str) -> None:
        self.stack, self.store_id, self.seq, self.errors = stack, store_id, 0, []

    async def __aenter__(self) -> StoreLink:
        async def on_error(exc):
            self.errors.append(str(exc))
        user, password = self.stack.store_credentials(self.store_id)
        self.nc = await nats.connect(self.stack.nats_address, user=user, password=password, error_cb=on_error,
                                     inbox_prefix=subjects.store_inbox_prefix(self.store_id))
        self.js = self.nc.jetstream()
        # A store's seqs only grow: a link goes on from the highest the cloud has of this store (another module's
        # box or link), or the cloud would take its events for old ones (on-hand is kept by seq)
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            self.seq = await conn.fetchval("select coalesce(max(seq), 0) from edge_events where store_id = $1",
                                           self.store_id) or 0
        finally:
            await conn.close()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.nc.close()

    def next_envelope(self) -> dict:
        self.seq += 1
        return envelope(self.store_id, self.seq)

    async def publish(self, message, msg_id: str | None = None) -> None:
        await self.js.publish(subjects.store_event(self.store_id, message.KIND), codec.encode(message),
                              headers={subjects.MSG_ID_HEADER: msg_id or message.event_id})

    async def publish_raw(self, kind: str, data: bytes) -> None:
        await self.js.publish(subjects.store_event(self.store_id, kind), data)

    async def commands(self, want: int = 100, timeout_s: float = 5.0, until=None) -> list:
        """The store's cloud messages, acked: `want` of them, or up to the first that `until(message)` holds for
        (every module's cloud tells the shared stores things: the one a test waits for may come after many)."""
        sub = await self.js.pull_subscribe_bind(durable=subjects.cloud_messages_consumer(self.store_id),
                                                stream=subjects.CLOUD_MESSAGES_STREAM)
        got = []
        deadline = time.monotonic() + timeout_s
        while len(got) < want and time.monotonic() < deadline:
            try:
                msgs = await sub.fetch(min(want - len(got), 100), timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for m in msgs:
                got.append(codec.decode(m.data))
                await m.ack()
                if until is not None and until(got[-1]):
                    want = len(got)  # found: stop here (the rest stays for the next reader)
                    break
        await sub.unsubscribe()
        return got


def this_clouds(violations: list[str], sales: tuple[str, ...] = ()) -> list[str]:
    """The audit's violations without other modules' flash sales: every module's cloud has actors of its own but the
    test database is shared, so this cloud audits another module's sale against a gate of its own that sold
    nothing. `sales`: flash sales of this module, kept."""
    return [v for v in violations if not v.startswith("flash sale ") or any(s in v for s in sales)]


async def eventually(check, timeout_s: float = 10.0, every_s: float = 0.1):
    """Await `check()` until it returns a truthy value; return it (or the last falsy one)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(every_s)
