"""A cloud message the store cannot apply never stops the ones behind it: it is tried again (a full mailbox
drains), then logged, counted and skipped; an acked outbox row that cannot be read is still dropped."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

import edge.sync as sync_module
from edge.core.cloud_messages import AckedRow, apply_ack
from edge.core.outcome import DropAcked
from edge.store_actor import Busy
from edge.sync import CLOUD_MESSAGE_TRIES_MAX, Sync
from protocol.messages import Ack, BusinessAck, MemberUpdated

ENVELOPE = {"store_id": "S001", "wall_ms": 1_767_225_600_000, "mono_ms": 1}


def member(n: int) -> MemberUpdated:
    return MemberUpdated(event_id=f"01JM{n:022d}", seq=n, member_id=f"M{n}", phone_hash=b"h" * 32,
                         phone_masked="138****0000",
                         member_code="0000000001", level="regular", stored_value_fen=0, points=0, **ENVELOPE)


class Actor:
    def __init__(self, failures: dict[int, list[Exception]]) -> None:
        self.failures, self.applied = failures, []

    async def ask(self, op: str, message):
        left = self.failures.get(message.seq, [])
        if left:
            raise left.pop(0)
        self.applied.append(message.seq)
        return "applied"


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(sync_module, "PAUSE_S", 0.001)
    monkeypatch.setattr(sync_module, "BACKOFF_MAX_S", 0.002)


async def test_a_busy_store_gets_the_message_again_and_a_poisoned_one_is_skipped(quick, caplog):
    actor = Actor({1: [Busy("full"), Busy("full")], 2: [RuntimeError("boom")] * (CLOUD_MESSAGE_TRIES_MAX + 1)})
    sync = Sync(SimpleNamespace(actor=actor, store_id="S001"), "nats://unused", "u", "p")
    with caplog.at_level(logging.ERROR, logger="freshmesh.edge.sync"):
        for n in (1, 2, 3):
            await sync._apply(member(n))
    assert actor.applied == [1, 3]  # 1 after two busy answers; 2 skipped; 3 not held up behind it
    assert sync.stats["skipped_cloud_messages"] == 1
    assert any("skipped member.updated" in r.message and "RuntimeError: boom" in r.message for r in caplog.records)


def test_an_acked_row_that_cannot_be_read_is_dropped_all_the_same():
    ack = BusinessAck(event_id="01JA" + "0" * 22, seq=9, acks=(Ack(event_id="E1", seq=1, result="ok", detail=""),
                                                             Ack(event_id="E2", seq=2, result="ok", detail="")),
                      **ENVELOPE)
    rows = [AckedRow(1, "E1", "sale.committed", b"\xc1 not msgpack"), AckedRow(2, "E2", "stock.moved")]
    outcome = apply_ack(ack, rows)
    assert outcome.effects == (DropAcked(("E1", "E2"), 2),)
    assert len(outcome.notes) == 1 and "E1" in outcome.notes[0]
