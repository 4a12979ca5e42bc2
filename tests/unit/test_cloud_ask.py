"""A till's request/reply to a cloud desk (edge/cloud_ask.py, used by edge/sync.py, edge/coupons.py,
edge/points_till.py): an answer counts only when it is one for this request (its hold id, and a coupon's code),
otherwise None and the till works offline."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace

from edge import coupons
from edge.cloud_ask import ask_cloud
from protocol import codec
from protocol.coupon_messages import CouponHoldAnswered, CouponReleased
from protocol.coupons import new_code
from protocol.ids import make_id

NOW = 1_767_229_200_000
CODE = new_code(lambda bits: 12345)
OTHER = new_code(lambda bits: 54321)
log = logging.getLogger("test.cloud_ask")


@dataclass
class Nc:
    reply: object = None
    asked: list = field(default_factory=list)

    async def request(self, subject: str, data: bytes, timeout: float):
        self.asked.append((subject, codec.decode(data), timeout))
        if self.reply is None:
            raise TimeoutError
        return SimpleNamespace(data=codec.encode(self.reply))


def link(nc: Nc, connected: bool = True):
    event = asyncio.Event()
    if connected:
        event.set()
    return SimpleNamespace(nc=nc, connected=event)


def answer(hold_id: str, code: str) -> CouponHoldAnswered:
    return CouponHoldAnswered(event_id=make_id(NOW, 2), store_id="S008", seq=0, wall_ms=NOW, mono_ms=0,
                              hold_id=hold_id, code=code, granted=False, reason="released", rule_id="", expires_ms=0)


def release(hold_id: str = "1:h") -> CouponReleased:
    return CouponReleased(event_id=make_id(NOW, 1), store_id="S008", seq=0, wall_ms=NOW, mono_ms=0, hold_id=hold_id,
                          code=CODE)


def ask(sync, request, matches=lambda a: True):
    return asyncio.run(ask_cloud(sync, "fm.store.S008.coupon.release", request, CouponHoldAnswered, matches,
                                 timeout_s=0.5, desk="coupon", what="release", reference=request.hold_id, log=log))


def test_an_answer_counts_only_for_its_own_request():
    mine = answer("1:h", CODE)
    assert ask(link(Nc(mine)), release(), lambda a: a.hold_id == "1:h") == mine
    assert ask(link(Nc(answer("2:h", CODE))), release(), lambda a: a.hold_id == "1:h") is None
    assert ask(link(Nc(release())), release()) is None  # not an answer at all


def test_no_link_or_no_answer_in_time_is_none():
    nc = Nc(None)
    assert ask(link(nc), release()) is None and nc.asked[0][2] == 0.5
    assert ask(link(Nc(answer("1:h", CODE)), connected=False), release()) is None
    assert ask(None, release()) is None


def test_a_coupon_release_checks_the_answers_hold_id_and_code():
    def box(reply):
        return SimpleNamespace(actor=SimpleNamespace(online=True), sync=link(Nc(reply)), store_id="S008")

    def run(reply):
        return asyncio.run(coupons._ask(box(reply), "release", release(), CouponHoldAnswered))
    assert run(answer("1:h", CODE)) is not None
    assert run(answer("2:h", CODE)) is None
    assert run(answer("1:h", OTHER)) is None
