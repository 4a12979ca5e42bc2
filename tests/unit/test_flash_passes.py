"""Flash passes: signed, self-contained, short-lived; checked with no I/O on the cloud's clock."""
from __future__ import annotations

from cloud.services.passes import PASS_TTL_MS, FlashPasses
from protocol.clock import ManualClock

KEY = b"k" * 32


def test_a_pass_names_its_member_until_it_lapses():
    clock = ManualClock(now_ms=1_800_000_000_000)
    passes = FlashPasses(KEY, clock)
    token, lapses = passes.issue("01MEMBER")
    assert passes.member(token) == "01MEMBER"
    assert lapses - clock.now_ms() <= PASS_TTL_MS
    clock.advance(PASS_TTL_MS - 1000)
    assert passes.member(token) == "01MEMBER"
    clock.advance(2000)
    assert passes.member(token) is None


def test_altered_forged_foreign_and_future_passes_are_refused():
    clock = ManualClock(now_ms=1_800_000_000_000)
    passes = FlashPasses(KEY, clock)
    token, _ = passes.issue("01ALICE")
    assert passes.member(token.replace("01ALICE", "01BOBBY")) is None
    signature_char = len(token) - 10  # (the last character carries padding bits base64 decoding ignores)
    flipped = "A" if token[signature_char] != "A" else "B"
    assert passes.member(token[:signature_char] + flipped + token[signature_char + 1:]) is None
    assert passes.member(FlashPasses(b"another key" * 3, clock).issue("01ALICE")[0]) is None
    for junk in ("", ".", "..", "a.b.c", "\x00", "x" * 10_000, "01ALICE"):
        assert passes.member(junk) is None
    later = FlashPasses(KEY, ManualClock(now_ms=clock.now_ms() + 3600_000))
    assert passes.member(later.issue("01ALICE")[0]) is None  # signed in the future: refused


def test_a_pass_verified_once_is_remembered_only_until_it_lapses():
    clock = ManualClock(now_ms=1_800_000_000_500)
    passes = FlashPasses(KEY, clock)
    token, _ = passes.issue("01CAROL")
    for _ in range(3):
        assert passes.member(token) == "01CAROL"
    assert list(passes.verified) == [token]
    passes.member("forged.pass.value")
    assert list(passes.verified) == [token]  # refused passes are not remembered
    fresh = FlashPasses(KEY, clock)  # the same pass, checked from scratch at each moment, agrees with the memory
    for step_ms in (PASS_TTL_MS - 1500, 999, 1):
        clock.advance(step_ms)
        assert passes.member(token) == fresh.member(token) == FlashPasses(KEY, clock).member(token)
    clock.advance(1000)
    assert passes.member(token) is None and token not in passes.verified
