"""What every durable actor shares: typed commands with caller-made ids, applied at most once; typed results.

A command is a record (`Command` subclass, one per operation, with its `OP` name); `apply(command, now_ms)`
answers with a `Result` whose `status` is one of:
  ok        applied now
  exists    this id was applied before with the same content: the first result is in `first`
  conflict  this id was applied before with different content: nothing changed
  rejected  a business refusal (e.g. not enough stock); recorded, so a retry gets the same answer
  error     a malformed command (missing id, unknown operation, a value out of range): nothing changed
`result.settled` is the answer that counts (the first one for `exists`) and `result.succeeded` says whether that
answer was `ok`: callers never look into `first` themselves.

Apply is deterministic in (state, command, now_ms): the shell journals commands (as `command_to_wire`) and
replays them (`decode`) after a crash. A query is a record too (`Query`): it reads state and changes nothing.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Any, ClassVar, Literal

from protocol.codec import pack
from protocol.errors import ProtocolError
from protocol.schema import field_hints, record, record_from_trusted, record_from_wire, require, to_wire

IDEMPOTENCY_RETENTION_MS = 24 * 3600 * 1000  # a retry may arrive up to a day later and still get "exists"
MAX_COMMAND_ID_LEN = 64

Status = Literal["ok", "exists", "conflict", "rejected", "error"]


@functools.cache
def _names(cls: type) -> tuple[str, ...]:
    """A command type's text fields other than its id."""
    return tuple(name for name, hint in field_hints(cls) if hint is str and name != "id")


@record
class Command:
    """One operation on an actor. `id` is made where the operation starts; a retry sends the same id."""
    OP: ClassVar[str] = ""
    # fields added after the command was first journaled: left off the wire while they hold this value, so a command
    # journaled before them keeps its fingerprint (a retry across the upgrade answers `exists`, not `conflict`)
    QUIET: ClassVar[dict[str, Any]] = {}
    id: str

    def __post_init__(self) -> None:
        """Every name a command carries (store, sku, member, reservation, order, worker, ...) must be non-empty: an
        empty one would open a nameless position or account. (`id` is checked by `apply`.) A subclass with checks
        of its own calls this first."""
        cls: type = type(self)  # plain `type` for the cache: mypy takes type[Command] as unhashable (python/mypy#11470)
        for name in _names(cls):
            require(getattr(self, name) != "", f"{self.OP}: {name} must not be empty")


@record
class Expire(Command):
    """Housekeeping every actor understands: drop what has expired (reservations, leases, old ids)."""
    OP: ClassVar[str] = "expire"


@record
class Result:
    """An actor's answer. `values` holds what the operation reports (each actor's docstring names them)."""
    status: Status
    reason: str = ""  # rejected, conflict, error: why
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    first: Result | None = None  # exists: the first answer
    noop: bool = False  # housekeeping that changed nothing: neither remembered nor journaled

    @property
    def settled(self) -> Result:
        """The answer that counts: the first one, for a retry."""
        return self.first if self.status == "exists" and self.first is not None else self

    @property
    def succeeded(self) -> bool:
        """ok now, or ok the first time."""
        return self.settled.status == "ok"

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


@record
class Query:
    """A question to an actor that changes nothing; `answer` asks the actor's own read method."""

    def answer(self, actor: Any) -> Any:
        raise NotImplementedError


@record
class AuditQuery(Query):
    """Every broken invariant, described; empty when all hold (every audited actor answers it)."""

    def answer(self, actor: Any) -> Any:
        return actor.audit()


def ok(**values: Any) -> Result:
    return Result(status="ok", values=values)


def rejected(reason: str, **values: Any) -> Result:
    return Result(status="rejected", reason=reason, values=values)


def error(reason: str) -> Result:
    return Result(status="error", reason=reason)


class CommandError(ValueError):
    """A command that cannot apply to this state (an unknown reservation, a sale not configured): nothing changed."""


def command_to_wire(command: Command) -> dict[str, Any]:
    wire: dict[str, Any] = to_wire(command)
    for name, value in command.QUIET.items():
        if wire.get(name) == value:
            del wire[name]
    wire["op"] = command.OP
    return wire


def result_to_wire(result: Result) -> dict[str, Any]:
    return {"status": result.status, "reason": result.reason, "values": result.values,
            "first": None if result.first is None else result_to_wire(result.first), "noop": result.noop}


def result_from_trusted(wire: dict[str, Any]) -> Result:
    """A result `result_to_wire` made in this system (an actor's answer crossing back): rebuilt without checks."""
    first = wire["first"]
    return Result(status=wire["status"], reason=wire["reason"], values=wire["values"], noop=wire["noop"],
                  first=None if first is None else result_from_trusted(first))


def fingerprint(packed: bytes) -> bytes:
    return hashlib.blake2b(packed, digest_size=12).digest()


@functools.cache
def _kinds_of(actor: type) -> dict[str, type[Command]]:
    """An actor type's commands by OP (Expire included). `actor` is typed plain `type` for the cache: mypy takes
    a class as unhashable (python/mypy#11470)."""
    commands: tuple[type[Command], ...] = (*getattr(actor, "COMMANDS"), Expire)  # noqa: B009 - see the docstring
    return {c.OP: c for c in commands}


@functools.cache
def _handlers_of(actor: type) -> dict[type, str]:
    """An actor type's command types and the method applying each (`op_<OP>`): one dict look-up per command."""
    return {kind: f"op_{op}" for op, kind in _kinds_of(actor).items() if hasattr(actor, f"op_{op}")}


class IdempotentActor:
    """Base class: dispatches a command to `op_<OP>` and remembers each command id's first result.

    Subclasses list their command types in `COMMANDS` (`Expire` is always understood)."""

    COMMANDS: ClassVar[tuple[type[Command], ...]] = ()

    def __init__(self) -> None:
        self.seen: dict[str, tuple[bytes, Result, int]] = {}  # id -> (fingerprint, first result, at_ms)

    @classmethod
    def _kinds(cls) -> dict[str, type[Command]]:
        actor: type = cls
        return _kinds_of(actor)

    @classmethod
    def rebuild(cls, wire: dict[str, Any]) -> Command:
        """A command from the wire form its caller made a moment ago (`command_to_wire`, across Ray): trusted, so
        not checked again; the journal's replay uses `decode`, which checks."""
        kind = cls._kinds().get(wire["op"])
        if kind is None:
            raise ProtocolError(f"{cls.__name__}: unknown op {wire['op']!r}")
        if kind.QUIET:
            wire = {**kind.QUIET, **wire}  # left off the wire for holding these values
        command: Command = record_from_trusted(kind, wire)
        return command

    @classmethod
    def decode(cls, wire: dict[str, Any]) -> Command:
        """A command from its wire form (the journal's), checked field by field; ProtocolError if it is not one."""
        if type(wire) is not dict:  # a journal row or frame that is not a map at all is refused the same way
            raise ProtocolError(f"{cls.__name__}: a command is a map, got {type(wire).__name__}")
        op = wire.get("op")
        kinds = cls._kinds()
        if not isinstance(op, str) or op not in kinds:
            raise ProtocolError(f"{cls.__name__}: unknown op {op!r}")
        command: Command = record_from_wire(kinds[op], wire, op, skip=frozenset({"op"}))
        return command

    def apply(self, command: Command, now_ms: int, packed: bytes | None = None) -> Result:
        """`packed` is the command's wire form packed, if the caller has it already (the journal needs it too)."""
        actor: type = type(self)  # plain `type` for the cache (python/mypy#11470)
        handler_name = _handlers_of(actor).get(type(command))
        if handler_name is None:
            return error(f"{type(self).__name__} has no operation {command.OP!r}")
        handler = getattr(self, handler_name)
        cid = command.id
        if not isinstance(cid, str) or not 0 < len(cid) <= MAX_COMMAND_ID_LEN:
            return error(f"{command.OP}: every command needs an id (1-{MAX_COMMAND_ID_LEN} chars)")
        fp = fingerprint(packed if packed is not None else pack(command_to_wire(command)))
        if cid in self.seen:
            first_fp, first, _ = self.seen[cid]
            if first_fp == fp:
                return Result(status="exists", first=first)
            return Result(status="conflict", reason=f"id {cid} was used for a different {command.OP}")
        try:
            result: Result = handler(command, now_ms)
        except (CommandError, ProtocolError) as exc:
            return error(str(exc))
        if not result.noop:  # housekeeping that changed nothing is not remembered either
            self.seen[cid] = (fp, result, now_ms)
        return result

    @staticmethod
    def changes_state(result: Result) -> bool:
        """Whether a result must be journaled: everything except answers that changed nothing."""
        return result.status in ("ok", "rejected") and not result.noop

    def forget_old_ids(self, now_ms: int) -> int:
        cutoff = now_ms - IDEMPOTENCY_RETENTION_MS
        old = [cid for cid, (_, _, at) in self.seen.items() if at < cutoff]
        for cid in old:
            del self.seen[cid]
        return len(old)

    # -- snapshots: the shell stores them so that recovery replays only the journal's tail
    def snapshot(self) -> dict[str, Any]:
        return {"seen": [[cid, fp, to_wire(result), at] for cid, (fp, result, at) in self.seen.items()],
                "state": self.state_snapshot()}

    def restore(self, data: dict[str, Any]) -> None:
        self.seen = {cid: (fp, record_from_wire(Result, result, "result"), at) for cid, fp, result, at in data["seen"]}
        self.restore_state(data["state"])

    def state_snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def restore_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
