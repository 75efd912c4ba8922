"""Read model `event_log`: every event's full envelope, for `/events` and `/events/{id}`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.base import Message, Projection, copy_rows, insert_rows, occurred_at
from projections.personal import erase_event_data, forgotten_subjects
from projections.tables import event_log

COLUMNS = tuple(column.name for column in event_log.columns)
DATA = COLUMNS.index("data")


def row_values(messages: Sequence[Message]) -> list[tuple[Any, ...]]:
    """Each event's row, in the table's column order (checked at import, below)."""
    return [
        (
            m.event.event_id,
            m.event.aggregate_type,
            m.event.aggregate_id,
            m.event.version,
            m.event.type,
            m.event.schema_version,
            occurred_at(m.event),
            m.event.command_id,
            m.event.correlation_id,
            m.event.causation_id,
            m.event.data,
            m.partition,
            m.offset,
            m.event.principal,
        )
        for m in messages
    ]


assert COLUMNS == (
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "version",
    "type",
    "schema_version",
    "occurred_at",
    "command_id",
    "correlation_id",
    "causation_id",
    "data",
    "partition",
    "offset",
    "principal",
), "row_values must follow the table's columns"


async def apply(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    rows = [dict(zip(COLUMNS, values, strict=True)) for values in row_values(messages)]
    if rows:
        await insert_rows(connection, event_log, rows)
    await erase_forgotten(connection, messages)


async def bulk_apply(connection: AsyncConnection, schema: str, messages: Sequence[Message]) -> None:
    """A rebuild's replay: COPY into the fresh table (asyncpg takes a JSONB value as its JSON text)."""
    rows = [(*v[:DATA], orjson.dumps(v[DATA]).decode(), *v[DATA + 1 :]) for v in row_values(messages)]
    await copy_rows(connection, schema, event_log, rows)
    await erase_forgotten(connection, messages)  # a forget read while the replay ran


async def erase_forgotten(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    for subject_id in forgotten_subjects(messages):
        await erase_event_data(connection, event_log, subject_id)


PROJECTION = Projection(name="event_log", tables=(event_log,), apply=apply, insert_only=True, bulk_apply=bulk_apply)
