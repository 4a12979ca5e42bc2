"""A delivered order returned at the till of the store that delivered it (its own staff), over the real stack (the
riders-at-the-store module's box): the store takes back its own part, the cloud refunds it through the payment."""
from __future__ import annotations

import pytest

from tests.integration.harness import eventually
from tests.integration.test_riders_edge import (
    box_order,
    own_violations,
    piece,
    ready_order,
    status_at,
    world,  # noqa: F401 - the fixture: that module's box and cloud
)

pytestmark = pytest.mark.integration


async def test_an_order_delivered_by_the_stores_staff_is_returned_at_its_till(world):  # noqa: F811 - the fixture
    services, http, box, lane = world
    order, member = await ready_order(services, http, ["silent"])
    oid = order["order_id"]
    assert await eventually(lambda: box_order(box, oid, "to_pick"), timeout_s=15), "the order never reached the store"
    assert (await lane.post(f"/deliveries/{oid}/own-staff", json={"staff_id": "han-mei"})).status_code == 200
    assert (await lane.post(f"/deliveries/{oid}/delivered", json={"staff_id": "han-mei"})).status_code == 200
    assert await eventually(lambda: status_at(http, member, oid, "delivered"), timeout_s=15)
    back = await lane.post("/lanes/1/returns", json={"order_id": oid, "lines": [{"sku": piece(), "qty": 1}]})
    assert back.status_code == 201, back.text
    assert await eventually(lambda: status_at(http, member, oid, "partially_refunded"), timeout_s=20), \
        "the cloud did not believe a return of an order this store delivered"

    async def refunded():
        return await services.cloud.db.fetchrow("select amount_fen, state from money_movements where movement_id = $1",
                                                f"refund:{oid}:ret:{back.json()['return_id']}")
    row = await eventually(refunded)
    assert row and row["amount_fen"] == order["total_fen"] // 2
    assert await own_violations(http, [oid]) == []
