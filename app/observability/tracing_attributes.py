"""What a span says about a command or an event: ids only, never its data (it may be personal)."""

from __future__ import annotations

from app.eventstore.envelope import CommandEnvelope, EventEnvelope


def trace_attributes(envelope: CommandEnvelope | EventEnvelope) -> dict[str, str | int]:
    found: dict[str, str | int] = {
        "eventline.aggregate_type": envelope.aggregate_type,
        "eventline.aggregate_id": envelope.aggregate_id,
        "eventline.correlation_id": envelope.correlation_id,
    }
    if isinstance(envelope, CommandEnvelope):
        found["eventline.command_id"] = envelope.command_id
    else:
        found["eventline.event_id"] = envelope.event_id
        found["eventline.version"] = envelope.version
    return found
