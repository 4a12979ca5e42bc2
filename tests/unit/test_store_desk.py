"""The cloud desks' shared request/reply (cloud/messaging/store_desk.py): a store asks only about itself, is
answered only in its own inbox, a refused or failing request gets no answer, and past the in-flight bound requests
are shed."""
from __future__ import annotations

import asyncio
import logging

from cloud.messaging.store_desk import StoreDesk
from protocol import codec, subjects
from protocol.coupon_messages import CouponWalletAnswered, CouponWalletRequested, store_subject
from protocol.ids import make_id
from tests.unit.test_coupon_desk import Msg

NOW = 1_767_229_200_000


class Desk(StoreDesk):
    subject = "fm.store.*.coupon.>"
    queue = "test"
    kinds = (CouponWalletRequested,)
    in_flight_max = 2
    log = logging.getLogger("test.store_desk")
    what = "test"
    kind_name = "test"
    stats_keys = ("asked",)

    def __init__(self) -> None:
        super().__init__(cloud=None)
        self.gate: asyncio.Event | None = None
        self.refuse: set[str] = set()

    def admit(self, request, store_id: str) -> bool:
        return request.member_id not in self.refuse

    async def decide(self, request, store_id: str):
        self.stats["asked"] += 1
        if self.gate is not None:
            await self.gate.wait()
        if request.member_id == "M0000000009":
            raise RuntimeError("the ledger is away")
        if request.member_id == "M0000000008":
            return None
        return CouponWalletAnswered(event_id=make_id(NOW, 1), store_id=store_id, seq=0, wall_ms=NOW, mono_ms=0,
                                    member_id=request.member_id, coupons=())


def ask(store: str, n: int, on: str | None = None, reply: str | None = None) -> Msg:
    request = CouponWalletRequested(event_id=make_id(NOW, n), store_id=store, seq=0, wall_ms=NOW, mono_ms=0,
                                    member_id=f"M{n:010d}")
    return Msg(store_subject(on or store, "wallet"), codec.encode(request),
               reply if reply is not None else f"{subjects.store_inbox_prefix(on or store)}.{n}")


def test_a_store_is_answered_about_itself_in_its_own_inbox_only():
    desk = Desk()
    own, other_store, other_inbox = ask("S008", 1), ask("S008", 2, on="S007"), ask("S008", 3, reply="_INBOX_S007.x")

    async def run():
        for m in (own, other_store, other_inbox):
            await desk._answer(m)
    asyncio.run(run())
    assert len(own.answers) == 1 and codec.decode(own.answers[0]).member_id == "M0000000001"
    assert other_store.answers == [] and other_inbox.answers == []
    assert desk.stats == {"asked": 1, "bad": 2, "shed": 0}


def test_a_refused_failing_or_unanswered_request_gets_no_answer():
    desk = Desk()
    desk.refuse = {"M0000000004"}
    msgs = [ask("S008", n) for n in (4, 8, 9)]

    async def run():
        for m in msgs:
            await desk._answer(m)  # none raises
    asyncio.run(run())
    assert [m.answers for m in msgs] == [[], [], []]
    assert desk.stats == {"asked": 2, "bad": 0, "shed": 0}


def test_past_the_in_flight_bound_requests_are_shed_and_a_slow_one_holds_up_no_other():
    desk = Desk()

    async def run():
        desk.gate = asyncio.Event()
        slow = [ask("S008", n) for n in (1, 2, 3)]
        for m in slow:
            await desk._on_request(m)  # returns at once: each is answered in its own task
        assert desk.stats["shed"] == 1 and len(desk._in_flight) == 2
        desk.gate.set()
        await asyncio.gather(*desk._in_flight)
        assert [len(m.answers) for m in slow] == [1, 1, 0]
        desk.gate = asyncio.Event()
        await desk._on_request(ask("S008", 5))
        await desk.stop()  # cancels what is in flight
        assert not desk._in_flight
    asyncio.run(run())
