"""The cloud trusts a store only for its own facts (issue 14), written as the attack, against the real stack.

A store (here by hand, as a hostile box would, with its own NATS user) publishes the pickup of another store's
order, a sale naming a member who does not exist and an escrow grant of 10^12; each is refused: dead-lettered with
the reason, the store told, the order and the escrow unchanged, and shown on the operations console. Then it floods
the cloud with junk frames: JetStream and `dead_letters` stay within their bounds and another store's sales still
arrive within seconds. (Store S008 is the hostile one, S001 the order's store and S007 the bystander.)
"""
from __future__ import annotations

import asyncio
import dataclasses
import uuid

import httpx
import pytest
import pytest_asyncio

from cloud.console.snapshot import ConsoleConfig
from cloud.messaging import refusals, streams
from protocol import subjects
from protocol.messages import BusinessAck, EscrowGranted, PickupCompleted, StockMoved
from protocol.rate import StoreRateLimits, StoreRates
from tests.faults.test_poison_events import applied, refused_acks, sale
from tests.integration.harness import StoreLink, customer, eventually, operator_headers, running_cloud, top_up

pytestmark = pytest.mark.integration
OP: dict[str, str] = {}
ADMIN = f"trust-admin-{uuid.uuid4().hex[:6]}"
HOSTILE, OWNER, BYSTANDER = "S008", "S001", "S007"


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"trust{uuid.uuid4().hex[:6]}-") as (services, url):
        services.console_config = ConsoleConfig(business_every_s=1.0, tick_s=0.5)
        OP.update(await operator_headers(services, username=ADMIN))
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            yield services, http, url


def received(link: StoreLink, sku: str, on_hand: int) -> StockMoved:
    return StockMoved(**link.next_envelope(), sku=sku, delta=on_hand, reason="receiving", shrinkage_reason="",
                      on_hand_after=on_hand, reference="")


async def escrow_of(services, store: str, sku: str) -> int:
    return sum(p["escrow"] for p in await services.cloud.actors.stock_pool.positions(store, sku))


async def dead_letters_of(services, store: str, since_id: int) -> list:
    return await services.cloud.db.fetch("select reason, raw, raw_bytes from dead_letters where store_id = $1 "
                                         "and id > $2 order by id", store, since_id)


async def test_another_stores_pickup_a_made_up_member_and_a_huge_grant_are_refused(cloud, stack):
    services, http, _ = cloud
    sku = next(p["sku"] for p in (await http.get("/products")).json()["products"]
               if p["unit"] == "piece" and "online" in p["channels"])
    async with StoreLink(stack, OWNER) as owner:  # the owner receives goods and grants the cloud its share
        await owner.publish(received(owner, sku, 20))
        await owner.publish(EscrowGranted(**owner.next_envelope(), sku=sku, qty=8, escrow_after=8))
        assert await eventually(lambda: _equals(escrow_of(services, OWNER, sku), 8))
    member = await customer(services, http)
    assert (await top_up(services, http, member, 100_000))["stored_value_fen"] == 100_000  # through the wallet
    order = (await http.post("/orders", json={"fulfilment": "pickup", "store_id": OWNER, "items": [{"sku": sku, "qty": 2}],
                                              "slot_start": _next_slot()},
                             headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})).json()
    paid = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.json()["status"] == "paid", paid.text
    since = await services.cloud.db.fetchval("select coalesce(max(id), 0) from dead_letters")

    async with StoreLink(stack, HOSTILE) as hostile:
        theft = PickupCompleted(**hostile.next_envelope(), order_id=order["order_id"], pickup_code=order["pickup_code"],
                                lane="1")
        ghost = dataclasses.replace(sale(hostile), member_id="M-made-up-0001")
        stock = received(hostile, sku, 10)
        huge = EscrowGranted(**hostile.next_envelope(), sku=sku, qty=10**12, escrow_after=10**12)
        fits = EscrowGranted(**hostile.next_envelope(), sku=sku, qty=4, escrow_after=4)
        past = EscrowGranted(**hostile.next_envelope(), sku=sku, qty=7, escrow_after=11)  # 4 + 7 > the 10 on hand
        for message in (theft, ghost, stock, huge, fits, past):
            await hostile.publish(message)
        dead = await eventually(lambda: _at_least(dead_letters_of(services, HOSTILE, since), 4), timeout_s=15)
        reasons = " | ".join(r["reason"] for r in dead)
        assert "escrow 11, more than the 10 the store reported on hand" in reasons, reasons
        assert "not allocated to this store" in reasons, reasons
        assert "member 'M-made-up-0001', who does not exist" in reasons, reasons
        assert "grant of 1000000000000" in reasons, reasons
        told = await refused_acks(hostile, {theft.event_id, ghost.event_id, huge.event_id, past.event_id, fits.event_id})
        assert set(told) == {theft.event_id, ghost.event_id, huge.event_id, past.event_id}, told
    # nothing changed: the order is still paid and the owner's escrow whole; the thief got no escrow
    status = await services.cloud.db.fetchval("select status from orders where order_id = $1", order["order_id"])
    assert status == "paid"
    assert await escrow_of(services, OWNER, sku) == 8
    assert await eventually(lambda: _equals(escrow_of(services, HOSTILE, sku), 4))  # its own, within its on-hand
    assert not await applied(services, [ghost.sale_id])
    # the operations console lists them, per store, with the reason
    async def shown():
        snap = (await http.get("/console/snapshot", headers=OP)).json()
        refused = (snap.get("business") or {}).get("refused") or {"by_store": [], "recent": []}
        mine = [r for r in refused["recent"] if r["store_id"] == HOSTILE]
        return any(r["store_id"] == HOSTILE and r["count"] >= 3 for r in refused["by_store"]) and mine
    recent = await eventually(shown, timeout_s=15)
    assert recent and any("not allocated to this store" in r["reason"] and r["kind"] == "pickup.completed"
                          for r in recent), recent
    # the order's own store hands it over: believed
    async with StoreLink(stack, OWNER) as owner:
        await owner.publish(PickupCompleted(**owner.next_envelope(), order_id=order["order_id"],
                                            pickup_code=order["pickup_code"], lane="1"))

    async def fulfilled():
        return await services.cloud.db.fetchval("select status from orders where order_id = $1",
                                                order["order_id"]) == "picked_up"
    assert await eventually(fulfilled, timeout_s=15)


async def test_the_console_page_lists_the_refused_events_in_chromium(cloud, tmp_path):
    """The operator sees them on the page itself: the refused panel names the store and the reason (the attack
    above left them)."""
    from playwright.async_api import async_playwright

    from tests.integration.test_console import OPERATOR_PASSWORD, chromium, launch, sign_in
    _, _, url = cloud
    browser_path = chromium()
    async with async_playwright() as pw:
        browser = await launch(pw, browser_path, tmp_path)
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            await sign_in(page, url, ADMIN, OPERATOR_PASSWORD)
            row = f'#panel-refused [data-refused-store="{HOSTILE}"]'
            await page.wait_for_selector(row, timeout=20_000)
            texts = await page.eval_on_selector_all(row, "rows => rows.map(r => r.textContent)")
            assert any("not allocated to this store" in t for t in texts), texts
            assert HOSTILE in (await page.text_content("#panel-refused .chart"))
        finally:
            await browser.close()


async def test_junk_frames_stay_within_the_bounds_and_other_stores_go_on(cloud, stack):
    services, _, _ = cloud
    js = services.cloud.nats.jetstream()
    bounds = streams.StreamBounds(events_max_bytes=8 * 1024 * 1024)  # small, so that the test can reach it
    await streams.ensure_streams(js, bounds)
    rates = services.bridge.throttle.rates  # and a store's rate the flood goes over (the defaults' burst is 64 MiB)
    services.bridge.throttle.rates = StoreRates(StoreRateLimits(bytes_per_s=512 * 1024, bytes_burst=4 * 1024 * 1024))
    since = await services.cloud.db.fetchval("select coalesce(max(id), 0) from dead_letters")
    try:
        async with StoreLink(stack, HOSTILE) as hostile, StoreLink(stack, BYSTANDER) as other:
            refused_by_jetstream = 0
            for i in range(100):  # ~1 MB each: bigger than any frame the codec makes
                try:
                    await hostile.js.publish(subjects.store_event(HOSTILE, "sale.committed"), bytes([i]) * 1_000_000)
                except Exception:  # noqa: BLE001 - JetStream refuses it: "message size exceeds maximum allowed"
                    refused_by_jetstream += 1
            assert refused_by_jetstream == 100
            for i in range(100):  # just under the frame limit: stored, until the stream's bound
                await hostile.js.publish(subjects.store_event(HOSTILE, "sale.committed"),
                                         bytes([i]) * (streams.StreamBounds().max_msg_size - 1024))
            fine = [sale(other) for _ in range(3)]
            for message in fine:
                await other.publish(message)
            assert await eventually(lambda: applied(services, [m.sale_id for m in fine]), timeout_s=10), \
                "another store's sales were held up by the flood"
        info = await js.stream_info(subjects.EVENTS_STREAM)
        assert info.state.bytes <= bounds.events_max_bytes, info.state.bytes
        rows, size = await services.cloud.db.fetchrow(
            "select count(*), coalesce(sum(octet_length(raw) + octet_length(reason) + octet_length(subject)), 0) "
            "from dead_letters where store_id = $1 and id > $2", HOSTILE, since)
        assert 0 < rows <= 101 and size <= rows * (refusals.DEAD_LETTER_RAW_MAX + 1000), (rows, size)
        # the flood went over the store's rate: what was not applied now is noted (once), for the console
        assert services.bridge.stats["throttled"] > 0
        assert any("over its rate" in r["reason"] for r in await dead_letters_of(services, HOSTILE, since))
    finally:
        services.bridge.throttle.rates = rates
        await streams.ensure_streams(js)


async def test_dead_letters_are_trimmed_per_store(cloud):
    """Migration 11's trigger keeps each store's newest DEAD_LETTERS_PER_STORE rows, and none older than
    DEAD_LETTER_MAX_AGE_MS, whatever writes them. (The age step removes the other tests' dead letters too, as it
    would in production a month later: this module's earlier tests have checked theirs.)"""
    services, _, _ = cloud
    db, now = services.cloud.db, services.cloud.now_ms()
    store = f"T{uuid.uuid4().hex[:8]}"
    rows = [(f"fm.store.{store}.evt.x", store, f"r{i}", b"x", 1, now) for i in range(refusals.DEAD_LETTERS_PER_STORE + 50)]
    await db.executemany(refusals.INSERT_SQL, rows[:600])
    await db.executemany(refusals.INSERT_SQL, rows[600:])
    assert await db.fetchval("select count(*) from dead_letters where store_id = $1", store) == \
        refusals.DEAD_LETTERS_PER_STORE
    assert await db.fetchval("select min(reason) from dead_letters where store_id = $1 and reason = 'r0'", store) is None
    # and none older than the age bound, once anything is written
    await db.execute(refusals.INSERT_SQL, f"fm.store.{store}.evt.x", store, "new", b"x", 1,
                     now + refusals.DEAD_LETTER_MAX_AGE_MS + 1)
    assert await db.fetchval("select count(*) from dead_letters where store_id = $1", store) == 1
    await db.execute("delete from dead_letters where store_id = $1", store)  # (its time is in the future)


async def _equals(awaitable, want):
    return (await awaitable) == want


async def _at_least(awaitable, n: int):
    rows = await awaitable
    return rows if len(rows) >= n else None


def _next_slot() -> str:
    from tests.integration.test_cloud_api import next_slot
    return next_slot()


async def test_a_dead_letter_written_the_old_way_is_capped_and_names_its_store(cloud):
    """Any writer's dead letter (here an insert naming only the first columns) keeps at most the capped frame."""
    services, _, _ = cloud
    store = f"T{uuid.uuid4().hex[:8]}"
    row = await services.cloud.db.fetchrow(
        "insert into dead_letters (subject, reason, raw, at_ms) values ($1, 'old way', $2, $3) "
        "returning store_id, octet_length(raw) as kept, raw_bytes", f"fm.store.{store}.evt.sale.committed",
        b"z" * 100_000, services.cloud.now_ms())
    assert (row["store_id"], row["kept"], row["raw_bytes"]) == (store, refusals.DEAD_LETTER_RAW_MAX, 100_000)
    await services.cloud.db.execute("delete from dead_letters where store_id = $1", store)


async def test_a_throttled_store_catching_up_has_its_receiving_and_grant_applied_in_order_once(cloud, stack):
    """The fault: a store catching up past its burst has its receiving dropped (over its rate) while the grant after
    it, sent once the bucket refilled, is admitted - and refused for good ("never reported any on hand"). With the
    gate, the grant waits for the receiving; the store's re-send from its head (`~1` ids, as `StuckHead` sends)
    applies both, in order, once."""
    services, http, _ = cloud
    store = "S003"
    skus = [p["sku"] for p in (await http.get("/products")).json()["products"]
            if p["unit"] == "piece" and "online" in p["channels"]]
    # SKUs no other module's S003 receives, so their escrow and on-hand are this test's alone
    sku, filler_sku = skus[-1], skus[-2]
    rates = services.bridge.throttle.rates  # the store's rate as the bridge reads it from its environment, narrowed
    services.bridge.throttle.rates = StoreRates(StoreRateLimits.from_env(
        {"FRESHMESH_STORE_EVENTS_PER_S": "2", "FRESHMESH_STORE_EVENTS_BURST": "3"}))
    since = await services.cloud.db.fetchval("select coalesce(max(id), 0) from dead_letters")
    throttled = services.bridge.stats["throttled"]
    try:
        async with StoreLink(stack, store) as link:
            for n in (1, 2, 3):  # the catch-up takes the whole burst...
                await link.publish(received(link, filler_sku, n))
            receive = received(link, sku, 10)  # ...so the receiving is over the rate: dropped for now
            await link.publish(receive)
            assert await eventually(lambda: _true(services.bridge.stats["throttled"] > throttled))
            await asyncio.sleep(1.0)  # the bucket refills: the grant is within the rate
            grant = EscrowGranted(**link.next_envelope(), sku=sku, qty=4, escrow_after=4)
            await link.publish(grant)
            assert await eventually(lambda: _true(services.bridge.stats["throttled"] > throttled + 1))
            assert await escrow_of(services, store, sku) == 0  # held behind the receiving, not refused
            await asyncio.sleep(1.0)
            for message in (receive, grant):  # the store's re-send of everything unacked, from its head, in order
                await link.publish(message, msg_id=f"{message.event_id}~1")
            assert await eventually(lambda: _equals(escrow_of(services, store, sku), 4), timeout_s=15)
            acks: dict[str, list[str]] = {}
            for message in await link.commands(want=200, timeout_s=3):
                if isinstance(message, BusinessAck):
                    for a in message.acks:
                        acks.setdefault(a.event_id, []).append(a.result)
            assert acks.get(receive.event_id) == ["ok"] and acks.get(grant.event_id) == ["ok"], acks
        assert await services.cloud.db.fetchval(
            "select count(*) from edge_events where event_id = any($1::text[])", [receive.event_id, grant.event_id]) == 2
        assert await services.cloud.db.fetchval("select on_hand from store_stock where store_id = $1 and sku = $2",
                                                store, sku) == 10
        reasons = [r["reason"] for r in await dead_letters_of(services, store, since)]
        assert reasons and all("over its rate" in r for r in reasons), reasons  # noted; nothing refused
        await asyncio.sleep(0.5)
        assert await escrow_of(services, store, sku) == 4  # once
    finally:
        services.bridge.throttle.rates = rates


async def _true(value: bool) -> bool:
    return value


async def test_a_store_cannot_freeze_a_members_stored_value_or_release_another_stores_hold(cloud, stack):
    """A hostile store asks for hold after hold on a member, asks for holds for a member who does not exist, and
    gives back another store's hold by its id: the holds per (store, member) are bounded, the made-up member gets
    none, and only the store holding a hold can release it."""
    from actors.member_ledger import HeldQuery, TopUp
    from protocol import codec
    from protocol.messages import HoldReleased, HoldRequested
    services, http, _ = cloud
    member = (await customer(services, http)).member_id
    await services.cloud.actors.member_ledger.send(TopUp(id=f"test:{uuid.uuid4().hex[:16]}", member=member,
                                                         amount_fen=10_000))

    async def ask(link: StoreLink, message):
        kind = "hold" if isinstance(message, HoldRequested) else "release"
        return codec.decode((await link.nc.request(subjects.store_stored_value(link.store_id, kind),
                                                   codec.encode(message), timeout=5)).data)

    def hold(link: StoreLink, member_id: str, amount: int) -> HoldRequested:
        return HoldRequested(**link.next_envelope(), hold_id=f"hold:{services.cloud.ids.new()}", member_id=member_id,
                             amount_fen=amount, lane="1")

    async def held() -> int:
        name = services.cloud.shards.member_ledger_name(member)
        return await services.cloud.actors.calls.ask(name, HeldQuery(member=member, now_ms=services.cloud.now_ms()))

    async with StoreLink(stack, OWNER) as owner, StoreLink(stack, HOSTILE) as hostile:
        mine = hold(owner, member, 3_000)
        assert (await ask(owner, mine)).granted
        # another store gives it back by its id: nothing changes
        await ask(hostile, HoldReleased(**hostile.next_envelope(), hold_id=mine.hold_id, member_id=member))
        assert await held() == 3_000
        # hold after hold: bounded per (store, member)
        answers = [await ask(hostile, hold(hostile, member, 1)) for _ in range(6)]
        assert [a.granted for a in answers] == [True] * 4 + [False] * 2
        assert f"store {HOSTILE} already holds member {member}'s stored value" in answers[-1].reason
        ghost = await ask(hostile, hold(hostile, "M-ghost-" + uuid.uuid4().hex[:8], 1))
        assert not ghost.granted and "no stored value for member" in ghost.reason
        # the owner gives its own back
        await ask(owner, HoldReleased(**owner.next_envelope(), hold_id=mine.hold_id, member_id=member))
        assert await held() == 4


async def test_a_store_cannot_burn_coupons_it_may_not_take(cloud, stack):
    """Defect 6 (issue 17): a hostile store knows a member's codes and claims them as redeemed at its till: an
    online-only coupon, one limited to another store, one outside its window, and one an online order holds (naming
    the order's id as its hold, both in the redemption and in a hold request). The first three are refused (dead
    letter, the store told), the order keeps its coupon, and no coupon is burned as `store:S008:...`."""
    from protocol import codec
    from protocol.coupon_messages import CouponHoldAnswered, CouponHoldRequested, CouponRedeemed, store_subject
    services, http, _ = cloud
    member = (await customer(services, http)).member_id
    run = uuid.uuid4().hex[:6]

    async def coupon(suffix: str, **body) -> str:
        definition = {"definition_id": f"trust-{suffix}-{run}", "rule_id": "R0025", "name": "5% off",
                      "valid_days": 30, **body}
        r = await http.post("/operator/coupon-definitions", json=definition, headers=OP)
        assert r.status_code == 201, r.text
        r = await http.post(f"/operator/coupon-definitions/trust-{suffix}-{run}/issue", headers=OP,
                            json={"batch_id": uuid.uuid4().hex, "member_ids": [member]})
        return r.json()["issued"][0]["code"]
    online_only = await coupon("online", channels=["online"])
    elsewhere = await coupon("elsewhere", channels=["online", "offline"], stores=[OWNER])
    later = await coupon("later", channels=["online", "offline"], valid_from_ms=services.cloud.now_ms() + 86_400_000,
                         valid_until_ms=services.cloud.now_ms() + 2 * 86_400_000)
    held = await coupon("held", channels=["online", "offline"])
    order_id = f"O-trust-{run}"  # as an online order's checkout reserves it
    await services.cloud.db.execute("update coupons set status = 'reserved', reserved_for = $2, channel = 'online' "
                                    "where code = $1", held, order_id)
    since = await services.cloud.db.fetchval("select coalesce(max(id), 0) from dead_letters")
    async with StoreLink(stack, HOSTILE) as hostile:
        grab = CouponHoldRequested(**hostile.next_envelope(), hold_id=order_id, code=held, member_id=member, lane="1")
        answer = codec.decode((await hostile.nc.request(store_subject(HOSTILE, "hold"), codec.encode(grab),
                                                        timeout=5)).data)
        assert isinstance(answer, CouponHoldAnswered) and not answer.granted, answer

        def claim(code: str, hold_id: str = "") -> CouponRedeemed:
            return CouponRedeemed(**hostile.next_envelope(), code=code, sale_id=f"sale-{uuid.uuid4().hex[:8]}",
                                  member_id=member, lane="1", hold_id=hold_id, offline=not hold_id, rule_id="R0025",
                                  saving_fen=500)
        claims = [claim(online_only), claim(elsewhere), claim(later), claim(held, order_id)]
        for message in claims:
            await hostile.publish(message)
        dead = await eventually(lambda: _at_least(dead_letters_of(services, HOSTILE, since), 3), timeout_s=15)
        reasons = " | ".join(r["reason"] for r in dead)
        assert "not valid at the till" in reasons and f"not valid at store {HOSTILE}" in reasons, reasons
        assert "not valid yet" in reasons, reasons
        told = await refused_acks(hostile, {m.event_id for m in claims[:3]})
        assert set(told) == {m.event_id for m in claims[:3]}, told

    async def conflict():
        return await services.cloud.db.fetchval("select count(*) from coupon_conflicts where code = $1", held)
    assert await eventually(conflict, timeout_s=15)  # the order's coupon named by another's hold: a conflict
    rows = {r["code"]: r for r in await services.cloud.db.fetch(
        "select code, status, redeemed_by, reserved_for from coupons where code = any($1::text[])",
        [online_only, elsewhere, later, held])}
    assert [rows[c]["status"] for c in (online_only, elsewhere, later)] == ["issued"] * 3
    assert rows[held]["status"] == "reserved" and rows[held]["reserved_for"] == order_id, dict(rows[held])


async def test_a_store_takes_at_most_its_daily_allowance_of_coupons_without_a_hold(cloud, stack):
    """Defect 6: claims of coupons taken without the cloud's hold beyond `OFFLINE_COUPONS_PER_DAY` a day are refused
    (a store cannot burn a member's whole wallet offline)."""
    from protocol.coupon_messages import CouponRedeemed
    from protocol.policy import OFFLINE_COUPONS_PER_DAY, chain_day_start_ms
    services, http, _ = cloud
    member = (await customer(services, http)).member_id
    run = uuid.uuid4().hex[:6]
    now = services.cloud.now_ms()
    day = chain_day_start_ms(now)
    taken = await services.cloud.db.fetchval(
        "select count(*) from coupons where status = 'redeemed' and channel = 'offline' and store_id = $1 "
        "and reserved_for is null and redeemed_ms >= $2 and redeemed_ms < $3", HOSTILE, day, day + 86_400_000)
    n = OFFLINE_COUPONS_PER_DAY - taken + 1
    r = await http.post("/operator/coupon-definitions", headers=OP, json={
        "definition_id": f"trust-allow-{run}", "rule_id": "R0025", "name": "5% off", "valid_days": 30,
        "channels": ["online", "offline"], "per_member_limit": n})
    assert r.status_code == 201, r.text
    codes = []
    for _ in range(n):
        r = await http.post(f"/operator/coupon-definitions/trust-allow-{run}/issue", headers=OP,
                            json={"batch_id": uuid.uuid4().hex, "member_ids": [member]})
        codes += [i["code"] for i in r.json()["issued"]]
    assert len(codes) == n
    since = await services.cloud.db.fetchval("select coalesce(max(id), 0) from dead_letters")
    async with StoreLink(stack, HOSTILE) as hostile:
        claims = [CouponRedeemed(**hostile.next_envelope(), code=code, sale_id=f"sale-{uuid.uuid4().hex[:8]}",
                                 member_id=member, lane="1", hold_id="", offline=True, rule_id="R0025", saving_fen=500)
                  for code in codes]
        for message in claims:
            await hostile.publish(message)
        dead = await eventually(lambda: _at_least(dead_letters_of(services, HOSTILE, since), 1), timeout_s=15)
        assert any(f"already took {OFFLINE_COUPONS_PER_DAY} coupons" in r["reason"] for r in dead), dead

    async def statuses():
        rows = await services.cloud.db.fetch("select status from coupons where code = any($1::text[])", codes)
        got = sorted(r["status"] for r in rows)
        return got if got.count("redeemed") == n - 1 else None
    assert await eventually(statuses, timeout_s=15) == ["issued"] + ["redeemed"] * (n - 1)
