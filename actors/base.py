"""What every durable actor shares: commands with caller-made ids, applied at most once.

A command is a plain map {"op": ..., "id": ..., ...}. `apply(command, now_ms)` answers with a result map whose
"status" is one of:
  ok        applied now
  exists    this id was applied before with the same content: the first result is in "first"
  conflict  this id was applied before with different content: nothing changed
  rejected  a business refusal (e.g. not enough stock); recorded, so a retry gets the same answer
Apply is deterministic in (state, command, now_ms): the shell journals commands and replays them after a crash.
"""
from __future__ import annotations

import hashlib

import msgpack

IDEMPOTENCY_RETENTION_MS = 24 * 3600 * 1000  # a retry may arrive up to a day later and still get "exists"
MAX_COMMAND_ID_LEN = 64


class CommandError(ValueError):
    """A malformed command (missing field, wrong type): refused without changing state."""


def pack_command(command: dict) -> bytes:
    return msgpack.packb(command, use_bin_type=True)


def fingerprint(packed: bytes) -> bytes:
    return hashlib.blake2b(packed, digest_size=12).digest()


def need(command: dict, field: str, kind: type = str):
    value = command.get(field)
    if type(value) is not kind or (kind is str and not value):
        raise CommandError(f"{command.get('op')}: field {field!r} must be a {'non-empty ' if kind is str else ''}{kind.__name__}")
    return value


def positive(command: dict, field: str) -> int:
    value = need(command, field, int)
    if value <= 0:
        raise CommandError(f"{command.get('op')}: field {field!r} must be positive")
    return value


class IdempotentActor:
    """Base class: dispatches `op` to `op_<name>` methods and remembers each command id's first result."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[bytes, dict, int]] = {}  # id -> (fingerprint, first result, at_ms)

    def apply(self, command: dict, now_ms: int, packed: bytes | None = None) -> dict:
        """`packed` is the command's msgpack form if the caller has it already (the journal needs it too)."""
        op = command.get("op")
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            return {"status": "error", "error": f"unknown op {op!r}"}
        cid = command.get("id")
        if not isinstance(cid, str) or not 0 < len(cid) <= MAX_COMMAND_ID_LEN:
            return {"status": "error", "error": f"{op}: every command needs an id (1-{MAX_COMMAND_ID_LEN} chars)"}
        fp = fingerprint(packed if packed is not None else pack_command(command))
        if cid in self.seen:
            first_fp, first, _ = self.seen[cid]
            if first_fp == fp:
                return {"status": "exists", "first": first}
            return {"status": "conflict", "error": f"id {cid} was used for a different {op}"}
        try:
            result = handler(command, now_ms)
        except CommandError as exc:
            return {"status": "error", "error": str(exc)}
        if not result.get("noop"):  # housekeeping that changed nothing is not remembered either
            self.seen[cid] = (fp, result, now_ms)
        return result

    def changes_state(self, result: dict) -> bool:
        """Whether a result must be journaled: everything except answers that changed nothing."""
        return result.get("status") in ("ok", "rejected") and not result.get("noop")

    def forget_old_ids(self, now_ms: int) -> int:
        cutoff = now_ms - IDEMPOTENCY_RETENTION_MS
        old = [cid for cid, (_, _, at) in self.seen.items() if at < cutoff]
        for cid in old:
            del self.seen[cid]
        return len(old)

    # -- snapshots: the shell stores them so that recovery replays only the journal's tail
    def snapshot(self) -> dict:
        return {"seen": [[cid, fp, result, at] for cid, (fp, result, at) in self.seen.items()],
                "state": self.state_snapshot()}

    def restore(self, data: dict) -> None:
        self.seen = {cid: (fp, result, at) for cid, fp, result, at in data["seen"]}
        self.restore_state(data["state"])

    def state_snapshot(self) -> dict:
        raise NotImplementedError

    def restore_state(self, state: dict) -> None:
        raise NotImplementedError


def ok(**fields) -> dict:
    return {"status": "ok", **fields}


def rejected(reason: str, **fields) -> dict:
    return {"status": "rejected", "reason": reason, **fields}
