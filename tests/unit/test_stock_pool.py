"""StockPool without Ray: escrow, reservations, expiry, reclaim, shortages, reroute; a stateful invariant test."""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from actors.stock_pool import DEFAULT_RESERVATION_TTL_MS, StockPool

T0 = 1_767_225_600_000


def run(pool, op, cid, now=T0, **fields):
    return pool.apply({"op": op, "id": cid, **fields}, now)


def test_view_of_everything_a_store_or_one_item():
    pool = StockPool()
    for store, sku, qty in (("S2", "B", 4), ("S1", "B", 2), ("S1", "A", 5)):
        run(pool, "grant", f"g-{store}-{sku}", store=store, sku=sku, qty=qty)
    assert [(v["store"], v["sku"]) for v in pool.view()] == [("S1", "A"), ("S1", "B"), ("S2", "B")]
    assert [(v["sku"], v["escrow"]) for v in pool.view("S1")] == [("A", 5), ("B", 2)]
    assert [(v["store"], v["sku"], v["escrow"]) for v in pool.view("S2", "B")] == [("S2", "B", 4)]
    assert pool.view("S2", "A") == [] and pool.view("S9") == []


def test_reserve_only_against_escrow():
    pool = StockPool()
    assert run(pool, "grant", "g1", store="S1", sku="A", qty=5)["escrow"] == 5
    assert run(pool, "reserve", "r1", reservation_id="R1", order_id="O1", store="S1", sku="A", qty=3)["status"] == "ok"
    refused = run(pool, "reserve", "r2", reservation_id="R2", order_id="O2", store="S1", sku="A", qty=3)
    assert refused == {"status": "rejected", "reason": "insufficient", "available": 2, "presale": False}
    assert run(pool, "reserve", "r3", reservation_id="R3", order_id="O3", store="S1", sku="A", qty=2)["available"] == 0
    assert pool.view("S1")[0]["presale"] is True
    assert pool.audit() == []


def test_retry_is_exists_and_reuse_is_conflict():
    pool = StockPool()
    run(pool, "grant", "g1", store="S1", sku="A", qty=5)
    first = run(pool, "reserve", "r1", reservation_id="R1", order_id="O1", store="S1", sku="A", qty=3)
    again = run(pool, "reserve", "r1", reservation_id="R1", order_id="O1", store="S1", sku="A", qty=3)
    assert again == {"status": "exists", "first": first}
    assert run(pool, "reserve", "r1", reservation_id="R1", order_id="O1", store="S1", sku="A", qty=1)["status"] == "conflict"
    assert pool.view()[0]["pending"] == 3


def test_unpaid_reservations_expire_and_paid_ones_do_not():
    pool = StockPool()
    run(pool, "grant", "g1", store="S1", sku="A", qty=10)
    run(pool, "reserve", "r1", reservation_id="R1", order_id="O1", store="S1", sku="A", qty=4)
    run(pool, "reserve", "r2", reservation_id="R2", order_id="O2", store="S1", sku="A", qty=4)
    run(pool, "confirm", "c2", reservation_id="R2")
    early = run(pool, "expire", "e1", now=T0 + DEFAULT_RESERVATION_TTL_MS - 1)
    assert early["expired"] == []
    late = run(pool, "expire", "e2", now=T0 + DEFAULT_RESERVATION_TTL_MS)
    assert late["expired"] == ["R1"]
    view = pool.view()[0]
    assert (view["pending"], view["confirmed"], view["available"]) == (0, 4, 6)
    assert run(pool, "confirm", "c1", reservation_id="R1")["reason"] == "reservation is expired"


def test_reclaim_returns_only_unreserved_units():
    pool = StockPool()
    run(pool, "grant", "g1", store="S1", sku="A", qty=10)
    run(pool, "reserve", "r1", reservation_id="R1", order_id="O1", store="S1", sku="A", qty=7)
    result = run(pool, "reclaim", "k1", store="S1", sku="A", qty=5)
    assert (result["returned"], result["escrow"], result["available"]) == (3, 7, 0)
    assert pool.audit() == []


def test_shortage_is_raised_newest_first_and_reroute_resolves_it():
    pool = StockPool()
    run(pool, "grant", "g1", store="S1", sku="A", qty=10)
    run(pool, "grant", "g2", store="S2", sku="A", qty=10)
    for n in (1, 2, 3):
        run(pool, "reserve", f"r{n}", reservation_id=f"R{n}", order_id=f"O{n}", store="S1", sku="A", qty=3)
        run(pool, "confirm", f"c{n}", reservation_id=f"R{n}")
    # 9 confirmed, the store now has 5 on the shelf: 4 short -> R3 (3) and R2 (3) cannot all be served
    result = run(pool, "report_on_hand", "h1", store="S1", sku="A", on_hand=5)
    assert [s["reservation_id"] for s in result["shortages"]] == ["R3", "R2"]
    moved = run(pool, "reroute", "m1", reservation_id="R3", to_store="S2")
    assert moved["store"] == "S2" and "R3" not in pool.shortages
    assert {(v["store"], v["confirmed"]) for v in pool.view()} == {("S1", 6), ("S2", 3)}
    assert pool.audit() == []


def test_fulfil_takes_units_out_of_escrow():
    pool = StockPool()
    run(pool, "grant", "g1", store="S1", sku="A", qty=5)
    run(pool, "reserve", "r1", reservation_id="R1", order_id="O1", store="S1", sku="A", qty=2)
    assert run(pool, "fulfil", "f0", reservation_id="R1")["status"] == "rejected"  # unpaid cannot be handed over
    run(pool, "confirm", "c1", reservation_id="R1")
    run(pool, "fulfil", "f1", reservation_id="R1")
    assert (pool.view()[0]["escrow"], pool.view()[0]["confirmed"]) == (3, 0)


def test_malformed_commands_are_errors_that_change_nothing():
    pool = StockPool()
    assert run(pool, "grant", "g1", store="S1", sku="A", qty=-1)["status"] == "error"
    assert run(pool, "grant", "g1", store="S1", sku="A", qty=2)["status"] == "ok"  # the id was not burnt
    assert pool.apply({"op": "nope", "id": "x"}, T0)["error"] == "unknown op 'nope'"
    assert pool.apply({"op": "grant"}, T0)["status"] == "error"


def test_snapshot_round_trip_keeps_state_and_idempotency():
    import msgpack
    pool = StockPool()
    run(pool, "grant", "g1", store="S1", sku="A", qty=5)
    run(pool, "reserve", "r1", reservation_id="R1", order_id="O1", store="S1", sku="A", qty=3)
    copy = StockPool()
    copy.restore(msgpack.unpackb(msgpack.packb(pool.snapshot(), use_bin_type=True), strict_map_key=False))
    assert copy.view() == pool.view()
    assert run(copy, "reserve", "r1", reservation_id="R1", order_id="O1", store="S1", sku="A", qty=3)["status"] == "exists"


class StockPoolMachine(RuleBasedStateMachine):
    """Random interleavings of every command; movements must always add up to the positions."""

    @initialize()
    def setup(self):
        self.pool, self.now, self.n = StockPool(), T0, 0
        self.ids: list[str] = []
        self.totals: dict[tuple, list[int]] = {}

    def _do(self, op, **fields):
        self.n += 1
        result = self.pool.apply({"op": op, "id": f"c{self.n}", **fields}, self.now)
        for store, sku, _, escrow, pending, confirmed, _ in result.get("movements", []):
            t = self.totals.setdefault((store, sku), [0, 0, 0])
            t[0] += escrow; t[1] += pending; t[2] += confirmed
        return result

    stores, skus = st.sampled_from(["S1", "S2"]), st.sampled_from(["A", "B"])

    @rule(store=stores, sku=skus, qty=st.integers(1, 8))
    def grant(self, store, sku, qty):
        self._do("grant", store=store, sku=sku, qty=qty)

    @rule(store=stores, sku=skus, qty=st.integers(1, 8))
    def reclaim(self, store, sku, qty):
        self._do("reclaim", store=store, sku=sku, qty=qty)

    @rule(store=stores, sku=skus, qty=st.integers(1, 5))
    def reserve(self, store, sku, qty):
        rid = f"R{self.n}"
        if self._do("reserve", reservation_id=rid, order_id="O" + rid, store=store, sku=sku, qty=qty)["status"] == "ok":
            self.ids.append(rid)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), op=st.sampled_from(["confirm", "cancel", "fulfil"]))
    def change(self, data, op):
        self._do(op, reservation_id=data.draw(st.sampled_from(self.ids)))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), to=stores)
    def reroute(self, data, to):
        self._do("reroute", reservation_id=data.draw(st.sampled_from(self.ids)), to_store=to)

    @rule(store=stores, sku=skus, on_hand=st.integers(0, 20))
    def report(self, store, sku, on_hand):
        self._do("report_on_hand", store=store, sku=sku, on_hand=on_hand)

    @rule(ms=st.integers(0, DEFAULT_RESERVATION_TTL_MS))
    def tick(self, ms):
        self.now += ms
        self._do("expire")

    @invariant()
    def holds(self):
        assert self.pool.audit() == []
        for (store, sku), pos in self.pool.positions.items():
            assert [pos.escrow, pos.pending, pos.confirmed] == self.totals.get((store, sku), [0, 0, 0])


TestStockPoolMachine = StockPoolMachine.TestCase
