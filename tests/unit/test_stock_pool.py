"""StockPool without Ray: escrow, reservations, expiry, reclaim, shortages, reroute; typed commands and results;
a stateful invariant test."""
from __future__ import annotations

import copy

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from actors.base import Expire, Result, command_to_wire
from actors.member_ledger import TopUp
from actors.stock_pool import (
    DEFAULT_RESERVATION_TTL_MS,
    Cancel,
    Confirm,
    Fulfil,
    Grant,
    Reclaim,
    ReportOnHand,
    Reroute,
    Reserve,
    SetChannelRatio,
    StockPool,
)
from protocol.codec import pack, unpack
from protocol.errors import ProtocolError

T0 = 1_767_225_600_000


def reserve(n, qty, store="S1", sku="A", cid=None):
    """Reservation R<n> for order O<n>, with command id r<n> unless told."""
    return Reserve(id=cid or f"r{n}", reservation_id=f"R{n}", order_id=f"O{n}", store=store, sku=sku, qty=qty)


def test_view_of_everything_a_store_or_one_item():
    pool = StockPool()
    for store, sku, qty in (("S2", "B", 4), ("S1", "B", 2), ("S1", "A", 5)):
        assert pool.apply(Grant(id=f"g-{store}-{sku}", store=store, sku=sku, qty=qty), T0).status == "ok"
    assert [(v["store"], v["sku"]) for v in pool.view()] == [("S1", "A"), ("S1", "B"), ("S2", "B")]
    assert [(v["sku"], v["escrow"]) for v in pool.view("S1")] == [("A", 5), ("B", 2)]
    assert [(v["store"], v["sku"], v["escrow"]) for v in pool.view("S2", "B")] == [("S2", "B", 4)]
    assert pool.view("S2", "A") == [] and pool.view("S9") == []


def test_reserve_only_against_escrow():
    pool = StockPool()
    assert pool.apply(Grant(id="g1", store="S1", sku="A", qty=5), T0)["escrow"] == 5
    assert pool.apply(reserve(1, 3), T0).status == "ok"
    refused = pool.apply(reserve(2, 3), T0)
    assert refused == Result(status="rejected", reason="insufficient", values={"available": 2, "presale": False})
    assert not refused.succeeded and refused.settled is refused
    assert pool.apply(reserve(3, 2), T0)["available"] == 0
    assert pool.view("S1")[0]["presale"] is True
    assert pool.audit() == []


def test_results_are_typed_with_their_values_and_movements():
    pool = StockPool()
    granted = pool.apply(Grant(id="g1", store="S1", sku="A", qty=5), T0)
    assert granted == Result(status="ok", values={"escrow": 5, "available": 5,
                                                  "movements": [["S1", "A", "grant", 5, 0, 0, "g1"]]})
    held = pool.apply(reserve(1, 2), T0)
    assert held == Result(status="ok", values={"expires_ms": T0 + DEFAULT_RESERVATION_TTL_MS, "available": 3,
                                               "movements": [["S1", "A", "reserve", 0, 2, 0, "R1"]]})
    assert held.succeeded and held.get("missing") is None and held.get("missing", 0) == 0
    with pytest.raises(KeyError):
        held["missing"]


def test_retry_is_exists_and_reuse_is_conflict():
    pool = StockPool()
    pool.apply(Grant(id="g1", store="S1", sku="A", qty=5), T0)
    first = pool.apply(reserve(1, 3), T0)
    again = pool.apply(reserve(1, 3), T0)
    assert again == Result(status="exists", first=first)
    assert again.settled == first and again.succeeded
    reused = pool.apply(reserve(1, 1), T0)
    assert reused == Result(status="conflict", reason="id r1 was used for a different reserve")
    assert pool.view()[0]["pending"] == 3


def test_unpaid_reservations_expire_and_paid_ones_do_not():
    pool = StockPool()
    pool.apply(Grant(id="g1", store="S1", sku="A", qty=10), T0)
    pool.apply(reserve(1, 4), T0)
    pool.apply(reserve(2, 4), T0)
    assert pool.apply(Confirm(id="c2", reservation_id="R2", sku="A"), T0).status == "ok"
    early = pool.apply(Expire(id="e1"), T0 + DEFAULT_RESERVATION_TTL_MS - 1)
    assert early["expired"] == [] and early.noop  # nothing to do: neither remembered nor journaled
    late = pool.apply(Expire(id="e2"), T0 + DEFAULT_RESERVATION_TTL_MS)
    assert late["expired"] == ["R1"] and not late.noop
    view = pool.view()[0]
    assert (view["pending"], view["confirmed"], view["available"]) == (0, 4, 6)
    assert pool.apply(Confirm(id="c1", reservation_id="R1", sku="A"), T0).reason == "reservation is expired"


def test_reclaim_returns_only_unreserved_units():
    pool = StockPool()
    pool.apply(Grant(id="g1", store="S1", sku="A", qty=10), T0)
    pool.apply(reserve(1, 7), T0)
    result = pool.apply(Reclaim(id="k1", store="S1", sku="A", qty=5), T0)
    assert (result["returned"], result["escrow"], result["available"]) == (3, 7, 0)
    assert pool.audit() == []


def test_shortage_is_raised_newest_first_and_reroute_resolves_it():
    pool = StockPool()
    pool.apply(Grant(id="g1", store="S1", sku="A", qty=10), T0)
    pool.apply(Grant(id="g2", store="S2", sku="A", qty=10), T0)
    for n in (1, 2, 3):
        pool.apply(reserve(n, 3), T0)
        pool.apply(Confirm(id=f"c{n}", reservation_id=f"R{n}", sku="A"), T0)
    # 9 confirmed, the store now has 5 on the shelf: 4 short -> R3 (3) and R2 (3) cannot all be served
    result = pool.apply(ReportOnHand(id="h1", store="S1", sku="A", on_hand=5), T0)
    assert [s["reservation_id"] for s in result["shortages"]] == ["R3", "R2"]
    moved = pool.apply(Reroute(id="m1", reservation_id="R3", sku="A", to_store="S2"), T0)
    assert moved["store"] == "S2" and "R3" not in pool.shortages
    assert {(v["store"], v["confirmed"]) for v in pool.view()} == {("S1", 6), ("S2", 3)}
    assert pool.audit() == []


def test_fulfil_takes_units_out_of_escrow():
    pool = StockPool()
    pool.apply(Grant(id="g1", store="S1", sku="A", qty=5), T0)
    pool.apply(reserve(1, 2), T0)
    unpaid = pool.apply(Fulfil(id="f0", reservation_id="R1", sku="A"), T0)  # unpaid cannot be handed over
    assert unpaid == Result(status="rejected", reason="reservation is pending", values={"state": "pending"})
    pool.apply(Confirm(id="c1", reservation_id="R1", sku="A"), T0)
    assert pool.apply(Fulfil(id="f1", reservation_id="R1", sku="A"), T0)["state"] == "fulfilled"
    assert (pool.view()[0]["escrow"], pool.view()[0]["confirmed"]) == (3, 0)


def test_malformed_commands_are_errors_that_change_nothing():
    pool = StockPool()
    with pytest.raises(ProtocolError, match="grant: qty must be positive"):
        Grant(id="g1", store="S1", sku="A", qty=-1)
    assert pool.apply(Grant(id="g1", store="S1", sku="A", qty=2), T0).status == "ok"  # the id was not burnt
    with pytest.raises(ProtocolError, match="StockPool: unknown op 'nope'"):
        StockPool.decode({"op": "nope", "id": "x"})
    with pytest.raises(ProtocolError, match="StockPool: a command is a map, got list"):
        StockPool.decode(["grant", "g1"])
    with pytest.raises(ProtocolError, match=r"grant\.id: missing"):
        StockPool.decode({"op": "grant", "store": "S1", "sku": "A", "qty": 1})
    before = (copy.deepcopy(pool.state_snapshot()), dict(pool.seen))
    # a command of another actor, and a command without a usable id: error results, nothing changed
    assert pool.apply(TopUp(id="t1", member="M1", amount_fen=1), T0) == Result(
        status="error", reason="StockPool has no operation 'topup'")
    no_id = pool.apply(Grant(id="", store="S1", sku="A", qty=1), T0)
    assert no_id.status == "error" and no_id.reason == "grant: every command needs an id (1-64 chars)"
    unknown = pool.apply(Confirm(id="c9", reservation_id="R9", sku="A"), T0)
    assert unknown == Result(status="error", reason="confirm: unknown reservation R9")
    assert (pool.state_snapshot(), pool.seen) == before


@pytest.mark.parametrize("wire, message", [
    ({"op": "grant", "id": "g", "store": "S1", "sku": "A", "qty": 0}, "grant: qty must be positive"),
    ({"op": "reclaim", "id": "k", "store": "S1", "sku": "A", "qty": -2}, "reclaim: qty must be positive"),
    ({"op": "set_ratio", "id": "s", "store": "S1", "sku": "A", "ratio_bp": 10_001}, "ratio_bp must be 0..10000"),
    ({"op": "reserve", "id": "r", "reservation_id": "R", "order_id": "O", "store": "S1", "sku": "A", "qty": 0},
     "reserve: qty must be positive"),
    ({"op": "reserve", "id": "r", "reservation_id": "R", "order_id": "O", "store": "S1", "sku": "A", "qty": 1,
      "ttl_ms": 0}, "reserve: ttl_ms must be a positive integer"),
    # a name must not be empty: it would open a nameless position
    ({"op": "grant", "id": "g", "store": "", "sku": "A", "qty": 1}, "grant: store must not be empty"),
    ({"op": "confirm", "id": "c", "reservation_id": "R", "sku": ""}, "confirm: sku must not be empty"),
    ({"op": "reroute", "id": "m", "reservation_id": "R", "sku": "A", "to_store": ""}, "reroute: to_store must not be empty"),
])
def test_a_command_that_fails_validation_is_refused_at_construction_and_by_decode(wire, message):
    kind = {c.OP: c for c in StockPool.COMMANDS}[wire["op"]]
    fields = {k: v for k, v in wire.items() if k != "op"}
    with pytest.raises(ProtocolError, match=message):
        kind(**fields)
    with pytest.raises(ProtocolError, match=message):
        StockPool.decode(wire)


def test_decode_checks_types_and_fields_and_round_trips_the_wire_form():
    from actors.base import command_to_wire
    with pytest.raises(ProtocolError, match=r"grant\.qty: expected an integer, got str"):
        StockPool.decode({"op": "grant", "id": "g", "store": "S1", "sku": "A", "qty": "3"})
    with pytest.raises(ProtocolError, match=r"unknown field\(s\) \['colour'\]"):
        StockPool.decode({"op": "grant", "id": "g", "store": "S1", "sku": "A", "qty": 3, "colour": "red"})
    with pytest.raises(ProtocolError, match=r"confirm\.sku: missing"):  # the shard key is required
        StockPool.decode({"op": "confirm", "id": "c", "reservation_id": "R1"})
    command = reserve(1, 3)
    assert StockPool.decode(command_to_wire(command)) == command
    assert StockPool.decode({"op": "expire", "id": "e"}) == Expire(id="e")


def test_a_confirm_for_another_sku_is_an_error_and_changes_nothing():
    pool = StockPool()
    pool.apply(Grant(id="g1", store="S1", sku="A", qty=5), T0)
    pool.apply(Grant(id="g2", store="S1", sku="B", qty=5), T0)
    pool.apply(reserve(1, 2), T0)
    before = (copy.deepcopy(pool.state_snapshot()), dict(pool.seen))
    wrong = pool.apply(Confirm(id="c1", reservation_id="R1", sku="B"), T0)
    assert wrong == Result(status="error", reason="confirm: reservation R1 is for A, not B")
    assert not wrong.succeeded
    for other in (Cancel(id="x1", reservation_id="R1", sku="B"), Fulfil(id="x2", reservation_id="R1", sku="B"),
                  Reroute(id="x3", reservation_id="R1", sku="B", to_store="S2")):
        assert pool.apply(other, T0) == Result(status="error", reason=f"{other.OP}: reservation R1 is for A, not B")
    assert (pool.state_snapshot(), pool.seen) == before
    assert pool.audit() == []
    # nothing was remembered under the id either: the corrected command applies
    assert pool.apply(Confirm(id="c1", reservation_id="R1", sku="A"), T0) == Result(
        status="ok", values={"state": "confirmed", "movements": [["S1", "A", "confirm", 0, -2, 2, "R1"]]})


def test_snapshot_round_trip_keeps_state_and_idempotency():
    pool = StockPool()
    firsts = [pool.apply(c, T0) for c in (
        Grant(id="g1", store="S1", sku="A", qty=5), reserve(1, 3), reserve(2, 3),  # the second is rejected
        Confirm(id="c1", reservation_id="R1", sku="A"), ReportOnHand(id="h1", store="S1", sku="A", on_hand=1))]
    assert [r.status for r in firsts] == ["ok", "ok", "rejected", "ok", "ok"]
    restored = StockPool()
    restored.restore(unpack(pack(pool.snapshot())))  # as the durable host stores it
    assert restored.view() == pool.view() and restored.shortages == pool.shortages and restored.audit() == []
    assert restored.seen.keys() == pool.seen.keys()
    retries = [restored.apply(c, T0 + 1) for c in (
        Grant(id="g1", store="S1", sku="A", qty=5), reserve(1, 3), reserve(2, 3),
        Confirm(id="c1", reservation_id="R1", sku="A"), ReportOnHand(id="h1", store="S1", sku="A", on_hand=1))]
    assert retries == [Result(status="exists", first=first) for first in firsts]
    assert restored.apply(reserve(1, 2), T0 + 1).status == "conflict"
    assert restored.view() == pool.view()


class StockPoolMachine(RuleBasedStateMachine):
    """Random interleavings of every command; movements must always add up to the positions."""

    @initialize()
    def setup(self):
        self.pool, self.now, self.n = StockPool(), T0, 0
        self.ids: list[tuple[str, str]] = []  # (reservation id, its sku)
        self.totals: dict[tuple, list[int]] = {}

    def _do(self, kind, **fields) -> Result:
        self.n += 1
        result = self.pool.apply(kind(id=f"c{self.n}", **fields), self.now)
        assert result.status in ("ok", "rejected"), result  # the machine only sends well-formed commands
        for store, sku, _, escrow, pending, confirmed, _ in result.get("movements", []):
            t = self.totals.setdefault((store, sku), [0, 0, 0])
            t[0] += escrow
            t[1] += pending
            t[2] += confirmed
        return result

    stores, skus = st.sampled_from(["S1", "S2"]), st.sampled_from(["A", "B"])

    @rule(store=stores, sku=skus, qty=st.integers(1, 8))
    def grant(self, store, sku, qty):
        self._do(Grant, store=store, sku=sku, qty=qty)

    @rule(store=stores, sku=skus, qty=st.integers(1, 8))
    def reclaim(self, store, sku, qty):
        self._do(Reclaim, store=store, sku=sku, qty=qty)

    channels = st.sampled_from(["online", "mkt:meituan", "mkt:eleme"])

    @rule(store=stores, sku=skus, qty=st.integers(1, 5), channel=channels)
    def reserve(self, store, sku, qty, channel):
        rid = f"R{self.n}"
        free = self.pool.position(store, sku).part(channel).available
        answer = self._do(Reserve, reservation_id=rid, order_id="O" + rid, store=store, sku=sku, qty=qty,
                          channel=channel)
        assert (answer.status == "ok") == (free >= qty)  # a channel reserves from its own share, all of it
        if answer.status == "ok":
            self.ids.append((rid, sku))

    @rule(store=stores, sku=skus, channel=st.sampled_from(["mkt:meituan", "mkt:eleme"]),
          ratio=st.sampled_from([0, 1_000, 3_000, 5_000, 7_000]))
    def set_channel_ratio(self, store, sku, channel, ratio):
        pos = self.pool.position(store, sku)
        others = sum(sh.ratio_bp for ch, sh in pos.shares.items() if ch != channel)
        answer = self._do(SetChannelRatio, store=store, sku=sku, channel=channel, ratio_bp=ratio)
        assert (answer.status == "ok") == (others + ratio <= 10_000)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), kind=st.sampled_from([Confirm, Cancel, Fulfil]))
    def change(self, data, kind):
        rid, sku = data.draw(st.sampled_from(self.ids))
        self._do(kind, reservation_id=rid, sku=sku)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), to=stores)
    def reroute(self, data, to):
        rid, sku = data.draw(st.sampled_from(self.ids))
        self._do(Reroute, reservation_id=rid, sku=sku, to_store=to)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), kind=st.sampled_from([Confirm, Cancel, Fulfil]))
    def wrong_sku(self, data, kind):
        """A command naming the wrong shard key is refused and changes nothing."""
        rid, sku = data.draw(st.sampled_from(self.ids))
        before = (copy.deepcopy(self.pool.state_snapshot()), dict(self.pool.seen))
        self.n += 1
        result = self.pool.apply(kind(id=f"c{self.n}", reservation_id=rid, sku="B" if sku == "A" else "A"), self.now)
        assert result.status == "error"
        assert (self.pool.state_snapshot(), self.pool.seen) == before

    @rule(store=stores, sku=skus, on_hand=st.integers(0, 20))
    def report(self, store, sku, on_hand):
        self._do(ReportOnHand, store=store, sku=sku, on_hand=on_hand)

    @rule(ms=st.integers(0, DEFAULT_RESERVATION_TTL_MS))
    def tick(self, ms):
        self.now += ms
        self._do(Expire)
        # reservations the pool has forgotten cannot be named any more
        self.ids = [(rid, sku) for rid, sku in self.ids if rid in self.pool.reservations]

    @invariant()
    def holds(self):
        assert self.pool.audit() == []
        for (store, sku), pos in self.pool.positions.items():
            assert [pos.escrow, pos.pending, pos.confirmed] == self.totals.get((store, sku), [0, 0, 0])
            for share in pos.shares.values():  # each share at its ratio of the escrow, as far as free units allow
                target = pos.escrow * share.ratio_bp // 10_000
                assert share.escrow <= target or share.available <= 0, (share, target)
                assert share.escrow >= target or pos.part("online").available <= 0, (share, target)


TestStockPoolMachine = StockPoolMachine.TestCase


# ---- channels: a marketplace's share of the online escrow ---------------------------------------------------
def mkt_reserve(n, qty, channel="mkt:meituan", store="S1", sku="A"):
    return Reserve(id=f"m{n}", reservation_id=f"M{n}", order_id=f"MO{n}", store=store, sku=sku, qty=qty,
                   channel=channel)


def test_a_marketplace_takes_its_ratio_of_the_escrow_and_each_channel_reserves_only_from_its_own():
    pool = StockPool()
    assert pool.apply(Grant(id="g1", store="S1", sku="A", qty=10), T0).status == "ok"
    set_ratio = pool.apply(SetChannelRatio(id="k1", store="S1", sku="A", channel="mkt:meituan", ratio_bp=3_000), T0)
    assert set_ratio["escrow"] == 3 and set_ratio["moved"] == {"mkt:meituan": 3}
    (view,) = pool.view("S1", "A")
    assert (view["escrow"], view["available"]) == (10, 7)  # the mall's 7, the marketplace's 3
    assert view["channels"] == {"mkt:meituan": {"escrow": 3, "pending": 0, "confirmed": 0, "available": 3,
                                                "ratio_bp": 3_000}}
    assert pool.availability([("S1", "A")], "mkt:meituan") == {"S1/A": 3}
    # the last units: each channel sells its own, and neither can take the other's
    assert pool.apply(mkt_reserve(1, 3), T0).status == "ok"
    refused = pool.apply(mkt_reserve(2, 1), T0)
    assert refused.reason == "insufficient" and refused["available"] == 0
    assert pool.apply(reserve(1, 7), T0).status == "ok"
    assert pool.apply(reserve(2, 1), T0).reason == "insufficient"
    assert pool.apply(Reserve(id="x", reservation_id="X", order_id="OX", store="S1", sku="A", qty=1,
                              channel="mkt:eleme"), T0).reason == "insufficient"  # a channel with no share
    assert pool.audit() == []
    # the marketplace's order is cancelled: its unit is free in its own share again, not the mall's
    assert pool.apply(Cancel(id="c1", reservation_id="M1", sku="A"), T0).status == "ok"
    assert pool.availability([("S1", "A")], "mkt:meituan") == {"S1/A": 3} and pool.view()[0]["available"] == 0


def test_shares_follow_the_escrow_with_free_units_only():
    pool = StockPool()
    pool.apply(SetChannelRatio(id="k1", store="S1", sku="A", channel="mkt:meituan", ratio_bp=5_000), T0)
    assert pool.apply(Grant(id="g1", store="S1", sku="A", qty=4), T0)["shares_moved"] == {"mkt:meituan": 2}
    assert pool.apply(reserve(1, 2), T0).status == "ok"  # the mall's two
    assert pool.apply(mkt_reserve(1, 1), T0).status == "ok"
    # the till sold past its share: the store reclaims 3; only one unit is free (the marketplace's), so one returns
    reclaimed = pool.apply(Reclaim(id="r-1", store="S1", sku="A", qty=3), T0)
    assert reclaimed["returned"] == 1 and reclaimed["escrow"] == 3
    (view,) = pool.view("S1", "A")
    assert view["channels"]["mkt:meituan"]["escrow"] == 1  # its reserved unit stays, over its ratio of 3
    assert pool.audit() == []
    # the store receives 7 more: the marketplace grows back to half of 10
    assert pool.apply(Grant(id="g2", store="S1", sku="A", qty=7), T0)["shares_moved"] == {"mkt:meituan": 4}
    assert pool.view("S1", "A")[0]["channels"]["mkt:meituan"]["escrow"] == 5
    # handing the marketplace's order over shrinks the escrow: its share follows (4 of 9), the mall keeps 5
    assert pool.apply(Confirm(id="f0", reservation_id="M1", sku="A"), T0).status == "ok"
    assert pool.apply(Fulfil(id="f1", reservation_id="M1", sku="A"), T0).status == "ok"
    (view,) = pool.view("S1", "A")
    assert view["escrow"] == 9 and view["channels"]["mkt:meituan"]["escrow"] == 4 and view["available"] == 3
    assert pool.audit() == []


def test_a_channel_ratio_past_the_whole_is_refused_and_ratio_zero_ends_a_share_as_its_orders_end():
    pool = StockPool()
    pool.apply(Grant(id="g1", store="S1", sku="A", qty=10), T0)
    assert pool.apply(SetChannelRatio(id="k1", store="S1", sku="A", channel="mkt:meituan", ratio_bp=6_000),
                      T0).status == "ok"
    too_much = pool.apply(SetChannelRatio(id="k2", store="S1", sku="A", channel="mkt:eleme", ratio_bp=5_000), T0)
    assert too_much.reason.startswith("the store's other channels hold 60%") and "at most 40%" in too_much.reason
    assert pool.apply(mkt_reserve(1, 2), T0).status == "ok"
    ended = pool.apply(SetChannelRatio(id="k3", store="S1", sku="A", channel="mkt:meituan", ratio_bp=0), T0)
    assert ended["escrow"] == 2 and ended["moved"] == {"mkt:meituan": -4}  # its free units to the mall at once
    assert pool.view()[0]["available"] == 8
    assert pool.apply(Cancel(id="c1", reservation_id="M1", sku="A"), T0).status == "ok"
    assert "channels" not in pool.view()[0] and pool.view()[0]["available"] == 10  # the share is gone
    assert pool.audit() == []
    with pytest.raises(ProtocolError, match="mkt:<id>"):
        SetChannelRatio(id="k4", store="S1", sku="A", channel="online", ratio_bp=1_000)  # the mall has the rest
    with pytest.raises(ProtocolError, match="channel"):
        Reserve(id="x", reservation_id="X", order_id="OX", store="S1", sku="A", qty=1, channel="MKT:X")


def test_shares_survive_a_snapshot_and_a_mall_reserve_keeps_its_wire_form_from_before_channels():
    pool = StockPool()
    for c in (Grant(id="g1", store="S1", sku="A", qty=10),
              SetChannelRatio(id="k1", store="S1", sku="A", channel="mkt:meituan", ratio_bp=2_000),
              mkt_reserve(1, 1), reserve(1, 2)):
        assert pool.apply(c, T0).status == "ok"
    restored = StockPool()
    restored.restore(unpack(pack(pool.snapshot())))
    assert restored.view() == pool.view() and restored.audit() == []
    assert restored.reservations["M1"].channel == "mkt:meituan" and restored.reservations["R1"].channel == "online"
    # a snapshot from before channels (7-field positions, 7-field reservations) loads as the mall's
    old = StockPool()
    old.restore_state({"positions": [["S1", "A", 5, 2, 0, -1, 4000]],
                       "reservations": [["R9", "O9", "S1", "A", 2, "pending", T0 + 1]], "shortages": []})
    assert old.audit() == [] and old.view()[0]["available"] == 3 and "channels" not in old.view()[0]
    # the mall's reserve travels as before channels (its fingerprint unchanged); a marketplace's names its channel
    assert "channel" not in command_to_wire(reserve(1, 2))
    assert command_to_wire(mkt_reserve(1, 1))["channel"] == "mkt:meituan"


def test_a_loan_for_a_mall_order_stays_the_malls_while_a_store_grant_is_shared_out():
    pool = StockPool()
    pool.apply(Grant(id="g1", store="S1", sku="A", qty=8), T0)
    pool.apply(SetChannelRatio(id="k1", store="S1", sku="A", channel="mkt:meituan", ratio_bp=2_500), T0)
    assert pool.view()[0]["available"] == 6  # the mall's 6, the marketplace's 2
    # a mall order for 8: the cloud borrowed the 2 it lacked from the store's till share; the loan is the mall's
    loan = pool.apply(Grant(id="g2", store="S1", sku="A", qty=2, channel="online"), T0)
    assert "shares_moved" not in loan.values and pool.view()[0]["available"] == 8
    assert pool.apply(reserve(1, 8), T0).status == "ok"
    assert pool.view()[0]["channels"]["mkt:meituan"]["available"] == 2 and pool.audit() == []
    # the same loan applied again by the event path (the same command): exists, nothing moves
    assert pool.apply(Grant(id="g2", store="S1", sku="A", qty=2, channel="online"), T0).status == "exists"
    # a grant from receiving is shared out: the marketplace is topped up to its quarter of 14
    assert pool.apply(Grant(id="g3", store="S1", sku="A", qty=4), T0)["shares_moved"] == {"mkt:meituan": 1}
    assert "channel" not in command_to_wire(Grant(id="g3", store="S1", sku="A", qty=4))  # as before channels
