"""The cloud's coupon desk (cloud/messaging/coupon_desk.py): a store asking for member after member's wallet (its
tills' offline snapshot) is answered at most `WALLETS_PER_STORE_PER_MINUTE` times a minute (defect 6: a hostile
store could read every member's coupon codes)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from cloud.messaging.coupon_desk import WALLETS_PER_STORE_PER_MINUTE, CouponDesk
from protocol import codec, subjects
from protocol.coupon_messages import CouponWalletAnswered, CouponWalletRequested, store_subject
from protocol.ids import make_id

NOW = 1_767_229_200_000


@dataclass
class FakeCloud:
    now: int = NOW

    def now_ms(self) -> int:
        return self.now


@dataclass
class Msg:
    subject: str
    data: bytes
    reply: str
    answers: list = field(default_factory=list)

    async def respond(self, data: bytes) -> None:
        self.answers.append(data)


def ask(store: str, n: int) -> Msg:
    request = CouponWalletRequested(event_id=make_id(NOW, n), store_id=store, seq=0, wall_ms=NOW, mono_ms=0,
                                    member_id=f"M{n:010d}")
    return Msg(store_subject(store, "wallet"), codec.encode(request), f"{subjects.store_inbox_prefix(store)}.{n}")


def test_a_store_gets_a_bounded_number_of_wallets_a_minute(monkeypatch):
    cloud = FakeCloud()
    desk = CouponDesk(cloud)

    async def wallet(request):
        return CouponWalletAnswered(event_id=make_id(NOW, 9), store_id=request.store_id, seq=0, wall_ms=NOW, mono_ms=0,
                                    member_id=request.member_id, coupons=())
    monkeypatch.setattr(desk, "wallet", wallet)

    async def run(store: str, n: int) -> int:
        msgs = [ask(store, i) for i in range(n)]
        for m in msgs:
            await desk._answer(m)
        return sum(1 for m in msgs if m.answers)
    assert asyncio.run(run("S008", WALLETS_PER_STORE_PER_MINUTE + 5)) == WALLETS_PER_STORE_PER_MINUTE
    assert asyncio.run(run("S007", 3)) == 3  # another store is not held back
    assert desk.stats["wallets_refused"] == 5
    cloud.now += 60_000  # the next minute
    assert asyncio.run(run("S008", 2)) == 2
