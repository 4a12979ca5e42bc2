"""Identifying a member at a lane asks the cloud twice (their limited rules' uses, their coupons): at once, so the
lane waits for the slower of the two, not their sum (each may take up to HOLD_TIMEOUT_MS)."""
from __future__ import annotations

import asyncio
import time

from edge import lanes


async def test_the_two_cloud_asks_run_together(monkeypatch):
    async def limits(box, lane, cart):
        await asyncio.sleep(0.3)
        return {**cart, "priced": True}

    async def snapshot(box, cart):
        await asyncio.sleep(0.3)
        cart["member"]["coupons"] = ["C1"]

    monkeypatch.setattr(lanes.limit_ops, "ask", limits)
    monkeypatch.setattr(lanes.coupons, "snapshot", snapshot)
    member = {"member_id": "m1"}
    started = time.monotonic()
    cart = await lanes.member_asks(object(), "1", {"member": member})
    assert time.monotonic() - started < 0.5
    assert cart == {"member": {"member_id": "m1", "coupons": ["C1"]}, "priced": True}
