"""A store's coupon redemptions are believed only as far as the coupon could give (issue 17 item 1), written as the
attack against the real stack: a hostile store (S033, by hand with its own NATS user) claims a coupon gave far more
than its rule can, under another rule than its own, more than its share of the sale it names, or, taken offline on
a sale never sent, more than the store's whole daily allowance; each is refused,
dead-lettered with the reason, the store told, the coupon left in the member's wallet. Then it takes coupons without
the cloud's hold, each believable, until their savings pass its daily fen allowance (`OFFLINE_COUPON_FEN_PER_DAY`):
every one is believed (the goods left) and stored with its saving, and the one past the allowance is reported as a
conflict saying how much the store took that day. Definitions carry this run's suffix; S033 is this module's own.
"""
from __future__ import annotations

import uuid

import httpx
import msgpack
import pytest
import pytest_asyncio

from protocol import codec, subjects
from protocol.coupon_messages import CouponHoldAnswered, CouponHoldRequested, CouponRedeemed, store_subject
from protocol.messages import Payment, Quantity, SaleCommitted, SaleLine
from protocol.policy import OFFLINE_COUPON_FEN_PER_DAY, OFFLINE_COUPONS_PER_DAY, chain_day, chain_day_start_ms
from protocol.promotion_uses import RuleUse
from tests.faults.test_poison_events import refused_acks
from tests.integration.harness import StoreLink, customer, eventually, operator_headers, running_cloud

pytestmark = pytest.mark.integration
HOSTILE = "S033"
AMOUNT_RULE, PERCENT_RULE = "R0022", "R0025"  # 10 yuan off vegetables; 5% off from 50 yuan
SKU = "PAC-SOY-0214"
RUN = uuid.uuid4().hex[:6]
OP: dict[str, str] = {}
DAY_MS = 86_400_000


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"cclaim{RUN}-") as (services, url):
        OP.update(await operator_headers(services))
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            yield services, http


async def coupons_of(http, member: str, suffix: str, rule: str, n: int) -> list[str]:
    definition = f"claims-{suffix}-{RUN}"
    r = await http.post("/operator/coupon-definitions", headers=OP, json={
        "definition_id": definition, "rule_id": rule, "name": f"claims {suffix}", "valid_days": 30,
        "channels": ["online", "offline"], "per_member_limit": n})
    assert r.status_code == 201, r.text
    codes: list[str] = []
    for _ in range(n):
        r = await http.post(f"/operator/coupon-definitions/{definition}/issue", headers=OP,
                            json={"batch_id": uuid.uuid4().hex, "member_ids": [member]})
        codes += [i["code"] for i in r.json()["issued"]]
    assert len(codes) == n
    return codes


def basket(link: StoreLink, member: str, list_fen: int, rule: str, saving_fen: int) -> SaleCommitted:
    """A sale of `list_fen` at list prices on which `rule` gave `saving_fen` (what a till sends with its coupons)."""
    total = list_fen - saving_fen
    return SaleCommitted(**link.next_envelope(), sale_id=f"CC{uuid.uuid4().hex[:20]}", lane="1",
                         lines=(SaleLine(sku=SKU, quantity=Quantity.pieces(10), amount_fen=total),), total_fen=total,
                         payments=(Payment(method="cash", amount_fen=total, reference=""),), member_id=member,
                         offline=True, promotions=(RuleUse(rule_id=rule, saving_fen=saving_fen),))


def redeemed(link: StoreLink, code: str, member: str, sale_id: str, rule: str, saving_fen: int) -> CouponRedeemed:
    return CouponRedeemed(**link.next_envelope(), code=code, sale_id=sale_id, member_id=member, lane="1", hold_id="",
                          offline=True, rule_id=rule, saving_fen=saving_fen)


async def statuses(services, codes: list[str]) -> dict[str, tuple[str, int | None]]:
    return {r["code"]: (r["status"], r["saving_fen"]) for r in await services.cloud.db.fetch(
        "select code, status, saving_fen from coupons where code = any($1::text[])", codes)}


async def test_a_saving_the_coupon_cannot_have_given_is_refused_and_the_coupon_stays_the_members(cloud, stack):
    services, http = cloud
    member = (await customer(services, http)).member_id
    amount = await coupons_of(http, member, "amount", AMOUNT_RULE, 3)
    percent = await coupons_of(http, member, "percent", PERCENT_RULE, 2)
    since = await services.cloud.db.fetchval("select coalesce(max(id), 0) from dead_letters")
    async with StoreLink(stack, HOSTILE) as hostile:
        sale = basket(hostile, member, 100_000, PERCENT_RULE, 6_000)  # the sale itself is the store's to say
        attacks = [
            redeemed(hostile, amount[0], member, f"CC{uuid.uuid4().hex[:20]}", AMOUNT_RULE, 10**8),
            redeemed(hostile, amount[1], member, f"CC{uuid.uuid4().hex[:20]}", PERCENT_RULE, 500),
            redeemed(hostile, percent[0], member, sale.sale_id, PERCENT_RULE, 6_000),  # 5% of 100,000 is 5,000
            redeemed(hostile, percent[1], member, f"CC{uuid.uuid4().hex[:20]}", PERCENT_RULE, 10**7),  # no sale
        ]
        honest = redeemed(hostile, amount[2], member, f"CC{uuid.uuid4().hex[:20]}", AMOUNT_RULE, 1_000)
        for message in (sale, *attacks, honest):
            await hostile.publish(message)

        async def reasons():
            rows = await services.cloud.db.fetch("select reason from dead_letters where store_id = $1 and id > $2",
                                                 HOSTILE, since)
            return " | ".join(r["reason"] for r in rows) if len(rows) >= len(attacks) else None
        seen = await eventually(reasons, timeout_s=20)
        assert seen, "the hostile store's coupon claims were not refused"
        assert f"coupon {amount[0]} claims a saving of 100000000 fen; its promotion {AMOUNT_RULE} gives at most " \
               "1000 fen" in seen, seen
        assert f"coupon {amount[1]} grants promotion {AMOUNT_RULE}, not {PERCENT_RULE}" in seen, seen
        assert (f"coupon {percent[0]} claims a saving of 6000 fen; its promotion {PERCENT_RULE} gives at most 5000 "
                "fen on a basket of 100000 fen at list prices") in seen, seen
        assert (f"coupon {percent[1]} claims a saving of 10000000 fen; its promotion {PERCENT_RULE} gives at most "
                f"{OFFLINE_COUPON_FEN_PER_DAY} fen taken offline, on a sale the cloud has not seen") in seen, seen
        told = await refused_acks(hostile, {a.event_id for a in attacks})
        assert set(told) == {a.event_id for a in attacks}, told  # the store is told each, with its reason

    async def settled():
        got = await statuses(services, amount + percent)
        return got if got[amount[2]][0] == "redeemed" else None
    got = await eventually(settled, timeout_s=15)
    assert got, "the honest redemption was never applied"
    assert [got[c] for c in (amount[0], amount[1], *percent)] == [("issued", None)] * 4  # still the member's
    assert got[amount[2]] == ("redeemed", 1_000)  # believed, with what it gave


async def test_a_store_past_its_daily_fen_allowance_is_believed_and_reported(cloud, stack):
    services, http = cloud
    db = services.cloud.db
    member = (await customer(services, http)).member_id
    day = chain_day_start_ms(services.cloud.now_ms())
    before = await db.fetchrow(
        "select count(*) as n, coalesce(sum(saving_fen), 0)::bigint as fen from coupons where status = 'redeemed' "
        "and channel = 'offline' and store_id = $1 and reserved_for is null and redeemed_ms >= $2 "
        "and redeemed_ms < $3", HOSTILE, day, day + DAY_MS)
    each = 5_000  # 5% of a 1,000-yuan basket: the most each can give, believed
    n = (OFFLINE_COUPON_FEN_PER_DAY - before["fen"]) // each + 1  # the last one passes the allowance
    assert before["n"] + n <= OFFLINE_COUPONS_PER_DAY, "this module's store took too many coupons today to test"
    codes = await coupons_of(http, member, "allowance", PERCENT_RULE, n)
    conflicts_before = await db.fetchval("select coalesce(max(conflict_id), 0) from coupon_conflicts")
    since = await db.fetchval("select coalesce(max(id), 0) from dead_letters")
    async with StoreLink(stack, HOSTILE) as store:
        last = None
        for code in codes:
            sale = basket(store, member, 100_000, PERCENT_RULE, each)
            last = redeemed(store, code, member, sale.sale_id, PERCENT_RULE, each)
            await store.publish(sale)
            await store.publish(last)
        assert last is not None

        async def all_redeemed():
            got = await statuses(services, codes)
            return got if all(s == "redeemed" for s, _ in got.values()) else None
        got = await eventually(all_redeemed, timeout_s=20)
        assert got, "the store's redemptions were not all believed"
        assert set(got.values()) == {("redeemed", each)}
        await refused_acks(store, set())  # its business acks: nothing left waiting in this store's stream

    rows = await db.fetch("select * from coupon_conflicts where conflict_id > $1 and store_id = $2 order by conflict_id",
                          conflicts_before, HOSTILE)
    taken = before["fen"] + n * each
    assert [(r["kind"], r["code"], r["event_id"]) for r in rows] == [("over_allowance", codes[-1], last.event_id)]
    assert (f"store {HOSTILE} took {taken} fen of coupons offline on {chain_day(last.wall_ms).isoformat()}, past its "
            f"allowance of {OFFLINE_COUPON_FEN_PER_DAY}") in rows[0]["detail"], rows[0]["detail"]
    assert await db.fetchval("select count(*) from dead_letters where store_id = $1 and id > $2", HOSTILE, since) == 0
    listed = (await http.get("/operator/coupons/conflicts", headers=OP)).json()["conflicts"]
    assert any(c["kind"] == "over_allowance" and c["code"] == codes[-1] for c in listed), listed


async def test_a_made_up_hold_is_no_hold_and_an_absurd_saving_is_refused_alone(cloud, stack):
    """The store's own `offline` flag is not the cloud's fact: a redemption naming a hold the cloud never gave
    (offline=False) on a percent coupon and a sale the cloud has not seen is judged as taken without a hold, and its
    saving past the daily allowance refused. A saving at the bigint column's end (2^63 - 1 fen, against a real hold,
    where nothing else bounds it; 2^63 the codec refuses) is refused by itself: the store's other redemption in the
    batch is still believed."""
    services, http = cloud
    member = (await customer(services, http)).member_id
    percent = await coupons_of(http, member, "madeup", PERCENT_RULE, 2)
    amount = await coupons_of(http, member, "alone", AMOUNT_RULE, 1)
    since = await services.cloud.db.fetchval("select coalesce(max(id), 0) from dead_letters")
    async with StoreLink(stack, HOSTILE) as hostile:
        hold_id = f"1:{uuid.uuid4().hex[:12]}"
        grab = CouponHoldRequested(**hostile.next_envelope(), hold_id=hold_id, code=percent[1], member_id=member,
                                   lane="1")
        answer = codec.decode((await hostile.nc.request(store_subject(HOSTILE, "hold"), codec.encode(grab),
                                                        timeout=5)).data)
        assert isinstance(answer, CouponHoldAnswered) and answer.granted, answer
        made_up = CouponRedeemed(**hostile.next_envelope(), code=percent[0], sale_id=f"CC{uuid.uuid4().hex[:20]}",
                                 member_id=member, lane="1", hold_id=f"1:{uuid.uuid4().hex[:12]}", offline=False,
                                 rule_id=PERCENT_RULE, saving_fen=10**7)
        huge = CouponRedeemed(**hostile.next_envelope(), code=percent[1], sale_id=f"CC{uuid.uuid4().hex[:20]}",
                              member_id=member, lane="1", hold_id=hold_id, offline=False, rule_id=PERCENT_RULE,
                              saving_fen=500)
        frame = msgpack.unpackb(codec.encode(huge), raw=False)
        frame["saving_fen"] = 2**63 - 1  # what no correct till sends: the bigint column's very end
        honest = redeemed(hostile, amount[0], member, f"CC{uuid.uuid4().hex[:20]}", AMOUNT_RULE, 1_000)
        await hostile.publish(made_up)
        await hostile.js.publish(subjects.store_event(HOSTILE, CouponRedeemed.KIND),
                                 msgpack.packb(frame, use_bin_type=True),
                                 headers={subjects.MSG_ID_HEADER: huge.event_id})
        await hostile.publish(honest)

        async def reasons():
            rows = await services.cloud.db.fetch("select reason from dead_letters where store_id = $1 and id > $2",
                                                 HOSTILE, since)
            return " | ".join(r["reason"] for r in rows) if len(rows) >= 2 else None
        seen = await eventually(reasons, timeout_s=20)
        assert seen, "the made-up hold and the absurd saving were not both refused"
        assert (f"coupon {percent[0]} claims a saving of 10000000 fen; its promotion {PERCENT_RULE} gives at most "
                f"{OFFLINE_COUPON_FEN_PER_DAY} fen") in seen, seen
        assert "coupon.redeemed.saving_fen" in seen, seen

    async def settled():
        got = await statuses(services, [*percent, *amount])
        return got if got[amount[0]][0] == "redeemed" else None
    got = await eventually(settled, timeout_s=15)
    assert got, "one bad redemption stopped the store's others"
    assert got[amount[0]] == ("redeemed", 1_000)
    assert got[percent[0]] == ("issued", None) and got[percent[1]][0] == "reserved", got
