"""Read model `event_log`: every event's full envelope, for `/events` and `/events/{id}`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from projections.base import Message, Projection, insert_rows, occurred_at
from projections.tables import event_log


async def apply(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    rows = [
        {
            "event_id": m.event.event_id,
            "aggregate_type": m.event.aggregate_type,
            "aggregate_id": m.event.aggregate_id,
            "version": m.event.version,
            "type": m.event.type,
            "schema_version": m.event.schema_version,
            "occurred_at": occurred_at(m.event),
            "command_id": m.event.command_id,
            "correlation_id": m.event.correlation_id,
            "causation_id": m.event.causation_id,
            "data": m.event.data,
            "partition": m.partition,
            "offset": m.offset,
            "principal": m.event.principal,
        }
        for m in messages
    ]
    if rows:
        await insert_rows(connection, event_log, rows)


PROJECTION = Projection(name="event_log", tables=(event_log,), apply=apply, insert_only=True)
