"""How one command meets one aggregate: idempotency, expected version, decide, evolve.

Pure (no I/O): the processor feeds it the aggregate it holds in memory and
gets back the events to append, the aggregate's next form and the result.
Offsets are not known yet at this point; the writer fills them into the
result once the events are produced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from app.domain.errors import DomainError
from app.domain.kind import AggregateKind
from app.domain.personal import personal_fields
from app.domain.registry import AGGREGATES
from app.eventstore.envelope import (
    AggregateRecord,
    CommandEnvelope,
    CommandResult,
    EventEnvelope,
    RememberedCommand,
)
from app.privacy.personal_data import PersonalDataRefused, WriterKeys


@dataclass(frozen=True, slots=True)
class Aggregate:
    """An aggregate as the processor holds it: live domain state and its version."""

    kind: AggregateKind[Any, Any, Any]
    aggregate_id: str
    version: int
    state: Any

    def to_record(self) -> AggregateRecord:
        state = None if self.state is None else self.kind.snapshot(self.state)
        return AggregateRecord(self.kind.name, self.aggregate_id, self.version, state)

    @classmethod
    def from_record(cls, record: AggregateRecord) -> Aggregate:
        kind = AGGREGATES[record.aggregate_type]
        state = None if record.state is None else kind.restore(record.state)
        return cls(kind, record.aggregate_id, record.version, state)


@dataclass(frozen=True, slots=True)
class Decision:
    command: CommandEnvelope
    events: list[EventEnvelope]
    result: CommandResult
    # The aggregate after this command, or None when nothing about it changed.
    aggregate: Aggregate | None

    @property
    def to_remember(self) -> bool:
        """A keyed command decided for the first time: its answer is kept for the retention.

        A refusal is kept too, so a retried command gets the same answer instead of being
        decided again; a key reused with another body is not a decision of its own.
        """
        return self.command.idempotent and not self.result.replayed and not self.reused_key

    @property
    def reused_key(self) -> bool:
        return (self.result.error or {}).get("code") == KEY_REUSED

    def remembered(self, result: CommandResult) -> RememberedCommand:
        return RememberedCommand(self.command.command_id, self.command.fingerprint, result)


KEY_REUSED = "idempotency-key-reused"


def decide_command(
    aggregate: Aggregate | None,
    command: CommandEnvelope,
    *,
    now: str,
    new_event_id: Callable[[], str],
    remembered: RememberedCommand | None = None,
    personal: WriterKeys | None = None,
) -> Decision:
    """Decide one command; `remembered` is what the partition remembers of its id, if anything.

    With `personal`, the command's personal fields are opened for the domain to decide on, and
    the events' are sealed again before they are stored or folded into the aggregate's state."""
    if remembered is not None:
        return _repeat(aggregate, command, remembered, now)
    kind = AGGREGATES.get(command.aggregate_type)
    if kind is None:
        return _reject(
            command,
            0,
            now,
            _error("unknown-aggregate-type", "Unknown aggregate type", f"no aggregate type {command.aggregate_type!r}"),
        )
    version = aggregate.version if aggregate else 0
    if command.expected_version is not None and command.expected_version != version:
        return _reject(
            command,
            version,
            now,
            _error(
                "version-mismatch",
                "Version mismatch",
                f"expected version {command.expected_version}, the aggregate is at {version}",
                expected=command.expected_version,
                actual=version,
            ),
        )
    command_type = kind.commands.get(command.type)
    if command_type is None:
        return _reject(
            command,
            version,
            now,
            _error("unknown-command", "Unknown command", f"{kind.name} has no command {command.type!r}"),
        )
    try:
        data = command.data if personal is None else personal.open_command(command_type, command)
        domain_command = command_type.model_validate(data)
        domain_events = kind.decide(aggregate.state if aggregate else None, domain_command)
        if personal is not None:
            domain_events = [sealed_event(personal, event, command.aggregate_id) for event in domain_events]
    except PersonalDataRefused as refused:
        return _reject(command, version, now, _error(refused.code, refused.title, refused.detail))
    except ValidationError as invalid:
        return _reject(
            command, version, now, _error("invalid-command", "Invalid command", str(invalid.errors(include_url=False)))
        )
    except DomainError as refused:
        return _reject(command, version, now, _error(refused.code, refused.title, refused.detail, **refused.extras()))
    return _accept(aggregate, kind, command, domain_events, now=now, new_event_id=new_event_id)


def sealed_event(personal: WriterKeys, event: Any, aggregate_id: str) -> Any:
    """The event with its personal fields sealed: what is stored, and what the state folds in (so
    the aggregate's snapshots on `<ns>.aggregates` hold no plaintext either)."""
    model = type(event)
    if not personal_fields(model):
        return event
    data = personal.seal_event(model, event.model_dump(mode="json"), aggregate_id)
    return model.model_validate(data)


def _accept(
    aggregate: Aggregate | None,
    kind: AggregateKind[Any, Any, Any],
    command: CommandEnvelope,
    domain_events: list[Any],
    *,
    now: str,
    new_event_id: Callable[[], str],
) -> Decision:
    version = aggregate.version if aggregate else 0
    state = aggregate.state if aggregate else None
    envelopes = []
    for event in domain_events:
        version += 1
        state = kind.evolve(state, event)
        envelopes.append(
            EventEnvelope(
                event_id=new_event_id(),
                type=event.type,
                schema_version=type(event).schema_version,
                aggregate_type=kind.name,
                aggregate_id=command.aggregate_id,
                version=version,
                occurred_at=now,
                command_id=command.command_id,
                correlation_id=command.correlation_id,
                causation_id=command.command_id,
                data=event.model_dump(mode="json", exclude={"type"}),
                principal=command.principal,
            )
        )
    after = Aggregate(kind, command.aggregate_id, version, state)
    result = CommandResult(
        command.command_id,
        command.aggregate_id,
        "succeeded",
        version,
        event_ids=[e.event_id for e in envelopes],
        decided_at=now,
    )
    return Decision(command, envelopes, result, after)


def _reject(command: CommandEnvelope, version: int, now: str, error: dict[str, Any]) -> Decision:
    result = CommandResult(command.command_id, command.aggregate_id, "rejected", version, error=error, decided_at=now)
    return Decision(command, [], result, None)


def _repeat(
    aggregate: Aggregate | None,
    command: CommandEnvelope,
    remembered: RememberedCommand,
    now: str,
) -> Decision:
    if remembered.fingerprint != command.fingerprint:
        error = _error(
            KEY_REUSED, "Idempotency key reused", "this idempotency key was already used for a different request"
        )
        result = CommandResult(
            command.command_id,
            command.aggregate_id,
            "rejected",
            aggregate.version if aggregate else 0,
            error=error,
            decided_at=now,
        )
        return Decision(command, [], result, None)
    return Decision(command, [], replace(remembered.result, replayed=True), None)


def _error(code: str, title: str, detail: str, **extras: Any) -> dict[str, Any]:
    return {"code": code, "title": title, "detail": detail, **extras}
