"""Read model `event_log`: every event's full envelope, for `/events` and `/events/{id}`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.base import Message, Projection, copy_rows, insert_rows, occurred_at
from projections.personal import erase_event_data, forgotten_subjects
from projections.tables import event_log

COLUMNS = tuple(column.name for column in event_log.columns)


def row_values(
    messages: Sequence[Message], data: Callable[[dict[str, Any]], Any] | None = None
) -> list[tuple[Any, ...]]:
    """Each event's row, in the table's column order (checked at import, below), its payload passed
    through `data` (a COPY takes it as JSON text). The envelope is taken from its message once per
    row: `Message.event` checks what it returns, and ten checks a row cost more than the row itself."""
    return [
        (
            e.event_id,
            e.aggregate_type,
            e.aggregate_id,
            e.version,
            e.type,
            e.schema_version,
            occurred_at(e),
            e.command_id,
            e.correlation_id,
            e.causation_id,
            e.data if data is None else data(e.data),
            m.partition,
            m.offset,
            e.principal,
        )
        for m in messages
        for e in (m.event,)
    ]


def json_text(data: dict[str, Any]) -> str:
    return orjson.dumps(data).decode()


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
    await copy_rows(connection, schema, event_log, row_values(messages, json_text))
    await erase_forgotten(connection, messages)  # a forget read while the replay ran


async def erase_forgotten(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    for subject_id in forgotten_subjects(messages):
        await erase_event_data(connection, event_log, subject_id)


PROJECTION = Projection(name="event_log", tables=(event_log,), apply=apply, insert_only=True, bulk_apply=bulk_apply)
