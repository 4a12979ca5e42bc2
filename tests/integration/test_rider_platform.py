"""The simulated rider platform as a service of its own (real HTTP both ways, no cloud): signed requests only,
one delivery per order and try, quotes by distance, cancel, and signed callbacks that move a rider from the store to
the customer. A small receiver started here plays the merchant."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from cloud.services.riders import HttpRiderPlatform, RidersRefused
from protocol import delivery
from simulators import rider_platform
from simulators.sim_http import serving

pytestmark = pytest.mark.integration
KEY, SECRET = "app-test", "secret-for-the-simulated-platform"


class Clock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


def order(origin: str, attempt: int = 1) -> dict:
    return {"origin_id": origin, "attempt": attempt,
            "pickup": {"name": "FreshMesh #5", "address": "S005", "lat": 31.20, "lon": 121.40, "contact": "S005"},
            "dropoff": {"lat": 31.22, "lon": 121.42}, "slot": {"start_ms": 0, "end_ms": 3_600_000},
            "cargo": {"value_fen": 2_000, "weight_g": 1_000, "items": 1}}


async def test_signed_idempotent_deliveries_and_signed_callbacks_along_the_way():
    received: list[tuple[dict, str | None]] = []

    async def merchant(request):
        raw = await request.body()
        why = delivery.verify(KEY, SECRET, request.headers, raw, int(time.time()))
        received.append((json.loads(raw), why))
        return JSONResponse({"code": 0})

    settings = rider_platform.Settings(KEY, SECRET, accept_delay_ms=300, step_ms=10, moves=3, seed=1)
    async with serving(Starlette(routes=[Route("/cb", merchant, methods=["POST"])]), 0, "merchant") as cb_url, \
            serving(rider_platform.build_app(settings), 0, rider_platform.LABEL) as url:
        platform = HttpRiderPlatform(url, KEY, SECRET, f"{cb_url}/cb", Clock())
        forged = HttpRiderPlatform(url, KEY, "not-the-secret", f"{cb_url}/cb", Clock())
        try:
            with pytest.raises(RidersRefused) as refused:
                await forged.create(order("O-1"))
            assert refused.value.status == 401
            quote = await platform.quote(order("O-1"))
            assert quote["fee_fen"] >= settings.base_fee_fen and 2_000 < quote["distance_m"] < 4_000
            first, again = await platform.create(order("O-1")), await platform.create(order("O-1"))
            assert first["platform_order_id"] == again["platform_order_id"]  # our order id and try: one delivery
            other = await platform.create(order("O-1", attempt=2))
            assert other["platform_order_id"] != first["platform_order_id"]
            with pytest.raises(RidersRefused):
                await platform.create({**order("O-2"), "dropoff": {"lat": "north"}})
            cancelled = await platform.cancel(other["platform_order_id"], "cancelled_by_merchant")
            assert cancelled["status"] == "cancelled"
            for _ in range(200):
                if any(b["status"] == "delivered" for b, _ in received):
                    break
                await asyncio.sleep(0.05)
        finally:
            await platform.close()
            await forged.close()
    mine = [b for b, _ in received if b["platform_order_id"] == first["platform_order_id"]]
    assert all(why is None for _, why in received)  # every callback signed with the app secret
    assert [b["status"] for b in mine] == ["accepted", "arrived_at_store", "picked_up", "delivering", "delivering",
                                           "delivering", "delivered"]
    assert all(b["platform"] == "simulated" and b["rider"]["name"] for b in mine)
    lats = [b["position"]["lat"] for b in mine[2:]]
    assert lats == sorted(lats) and lats[0] == 31.20 and lats[-1] == 31.22  # from the store to the customer
    assert not [b for b, _ in received if b["platform_order_id"] == other["platform_order_id"]]  # called off first
