"""What travels on the topics: commands, events, aggregate records and results.

Each message is a plain frozen dataclass with `encode()` to JSON bytes and a
`decode()` classmethod. orjson serialises dataclasses itself, field by field
in declaration order (about fifteen times faster than going through `asdict`).
Keys are aggregate ids (command ids for results), so every message about one
aggregate shares a partition.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import orjson

from app.domain.base import Command, Event
from app.domain.registry import AGGREGATES

Headers = list[tuple[str, bytes]]
T = TypeVar("T")


def utc_now() -> str:
    """RFC 3339 UTC timestamp with microseconds, e.g. 2026-11-25T12:00:00.123456Z."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class CommandEnvelope:
    """A command on `<ns>.commands`: what to do, to which aggregate, and under which conditions."""

    command_id: str
    type: str
    aggregate_type: str
    aggregate_id: str
    data: dict[str, Any]
    issued_at: str
    correlation_id: str
    causation_id: str
    expected_version: int | None = None
    # Hash of what the client asked for: a reused idempotency key with another body is refused.
    fingerprint: str = ""
    # Sent under an Idempotency-Key: the processor remembers it for the retention (idempotency.py).
    idempotent: bool = False
    # Who asked (the audit trail): an API key's name, `anonymous` in development, or a service such
    # as `saga`. Set where the command is made from the caller's credentials, never from its body;
    # empty in commands written before it existed.
    principal: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def decode(cls, raw: bytes) -> CommandEnvelope:
        return from_record(cls, orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class EventEnvelope:
    """An event on `<ns>.events`, the form every consumer in any language reads."""

    event_id: str
    type: str
    schema_version: int
    aggregate_type: str
    aggregate_id: str
    version: int
    occurred_at: str
    command_id: str
    correlation_id: str
    causation_id: str
    data: dict[str, Any]
    # Who caused it: the principal of the command it was decided from (empty in older events).
    principal: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(self)

    def headers(self) -> Headers:
        return [("type", self.type.encode()), ("schema_version", str(self.schema_version).encode())]

    @classmethod
    def decode(cls, raw: bytes) -> EventEnvelope:
        return from_record(cls, orjson.loads(raw))


def from_record(cls: Callable[..., T], data: dict[str, Any]) -> T:
    """`cls` built from a decoded record. A record of this version (every one, until an upgrade) is built
    as it is; one whose TypeError says it has fields this version lacks is built from the fields it knows."""
    try:
        return cls(**data)
    except TypeError:
        return cls(**known_fields(cls, data))


def known_fields(cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The fields `cls` has: a record written by a newer version still decodes here."""
    fields: dict[str, Any] = cls.__dataclass_fields__
    if fields.keys() >= data.keys():
        return data
    return {k: v for k, v in data.items() if k in fields}


Outcome = Literal["succeeded", "rejected"]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What became of a command; on `<ns>.command-results`, keyed by command id."""

    command_id: str
    aggregate_id: str
    outcome: Outcome
    version: int
    # {partition: offset} of the last event written, as a string-keyed map for JSON.
    position: dict[str, int] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    # True when the processor answered from its idempotency memory instead of deciding again.
    replayed: bool = False
    decided_at: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def decode(cls, raw: bytes) -> CommandResult:
        return cls(**orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class RememberedCommand:
    """A decided keyed command, kept so a repeat gets its original result (idempotency.py)."""

    command_id: str
    fingerprint: str
    result: CommandResult

    def encode(self) -> bytes:
        return orjson.dumps({"fingerprint": self.fingerprint, "result": self.result})

    @classmethod
    def decode(cls, raw: bytes) -> RememberedCommand:
        data = orjson.loads(raw)
        result = from_record(CommandResult, data["result"])
        return cls(result.command_id, data["fingerprint"], result)


@dataclass(frozen=True, slots=True)
class AggregateRecord:
    """One aggregate's state on the compacted `<ns>.aggregates` changelog."""

    aggregate_type: str
    aggregate_id: str
    version: int
    state: dict[str, Any] | None
    # The older format kept the aggregate's last commands here; read, never written again.
    recent: tuple[RememberedCommand, ...] = ()

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "aggregate_type": self.aggregate_type,
                "aggregate_id": self.aggregate_id,
                "version": self.version,
                "state": self.state,
                "recent": [],  # still present, so a processor of the older version can read the record
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> AggregateRecord:
        data = orjson.loads(raw)
        recent = tuple(
            RememberedCommand(command_id, fingerprint, from_record(CommandResult, result))
            for command_id, fingerprint, result in data.get("recent", ())
        )
        return cls(data["aggregate_type"], data["aggregate_id"], data["version"], data["state"], recent)


@dataclass(frozen=True, slots=True)
class Notification:
    """A thin event notification on `<ns>.notifications`: enough to decide whether to fetch."""

    event_id: str
    type: str
    aggregate_type: str
    aggregate_id: str
    version: int
    published_at: str
    href: str

    def encode(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def of(cls, event: EventEnvelope, published_at: str) -> Notification:
        return cls(
            event.event_id,
            event.type,
            event.aggregate_type,
            event.aggregate_id,
            event.version,
            published_at,
            f"/events/{event.event_id}",
        )


# --- Built from and read back into the domain's own types ------------------------------------------------


def new_command(
    command: Command,
    aggregate_id: str,
    *,
    command_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    expected_version: int | None = None,
    idempotent: bool = False,
    principal: str,
    aggregate_type: str | None = None,
) -> CommandEnvelope:
    """The one way to wrap a domain command for the commands topic, used by the API and the saga alike.

    The aggregate type comes from the command's class (`aggregate_type` names it for a command that
    several aggregates take, such as ForgetSubject), the data is the command's own fields, and the
    fingerprint hashes what was asked, so a key reused for another request is told apart.
    """
    kind: str = command.type  # type: ignore[attr-defined]  # every concrete command has its literal
    aggregate_type = aggregate_type or AGGREGATE_OF_COMMAND.get(type(command))
    if aggregate_type is None:
        raise ValueError(f"{kind} is taken by several aggregates: name the aggregate_type")
    data = command.model_dump(mode="json", exclude={"type"})
    command_id = command_id or str(uuid.uuid4())
    return CommandEnvelope(
        command_id=command_id,
        type=kind,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        data=data,
        issued_at=utc_now(),
        correlation_id=correlation_id or command_id,
        causation_id=causation_id or command_id,
        expected_version=expected_version,
        fingerprint=fingerprint(kind, aggregate_id, data),
        idempotent=idempotent,
        principal=principal,
    )


def fingerprint(kind: str, aggregate_id: str, data: dict[str, Any]) -> str:
    canonical = orjson.dumps([kind, aggregate_id, data], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


def domain_event(event: EventEnvelope) -> Event:
    """The event as its domain class, so consumers match on classes, not on `type` strings and dict keys.

    Raises KeyError for a type no aggregate has, and pydantic's ValidationError (a ValueError) for data
    that is not that event's: both are an unreadable record to the consumer.
    """
    cls: type[Event] = AGGREGATES[event.aggregate_type].events[event.type]
    return cls.model_validate({"type": event.type, **event.data})


def _aggregate_of_command() -> dict[type[Command], str]:
    """Each command class taken by exactly one aggregate, with that aggregate's name."""
    takers: dict[type[Command], list[str]] = {}
    for kind in AGGREGATES.values():
        for cls in kind.commands.values():
            takers.setdefault(cls, []).append(kind.name)
    return {cls: names[0] for cls, names in takers.items() if len(names) == 1}


AGGREGATE_OF_COMMAND: dict[type[Command], str] = _aggregate_of_command()
