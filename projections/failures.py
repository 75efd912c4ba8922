"""Poison events: recorded after their retries, listed, and retried once fixed.

In `skip` mode the runner records the failure and moves past the event; in
`halt` mode it records it and stops the projection at that event until an
operator retries it (`eventline failures retry ID`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.observability.logs import error_text
from projections.base import Message, Projection
from projections.tables import failures, projection_status


def payload_of(message: Message) -> dict[str, Any]:
    value = message.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return dict(value)


async def record(
    connection: AsyncConnection, projection: str, message: Message, error: BaseException, attempts: int
) -> int:
    payload = payload_of(message)
    result = await connection.execute(
        insert(failures)
        .values(
            projection=projection,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            event_id=payload.get("event_id") or payload.get("command_id"),
            event_type=payload.get("type"),
            payload=orjson.dumps(payload).decode(),
            attempts=attempts,
            error=error_text(error)[:4000].replace("\x00", "\\x00"),
        )
        .returning(failures.c.failure_id)
    )
    return int(result.scalar_one())


async def halt(connection: AsyncConnection, projection: str, reason: str) -> None:
    statement = insert(projection_status).values(projection=projection, state="halted", halted_reason=reason)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[projection_status.c.projection],
            set_={"state": "halted", "halted_reason": reason, "updated_at": func.now()},
        )
    )


async def resume(connection: AsyncConnection, projection: str) -> None:
    await connection.execute(
        update(projection_status)
        .where(projection_status.c.projection == projection)
        .values(state="running", halted_reason=None, updated_at=func.now())
    )


async def is_halted(connection: AsyncConnection, projection: str) -> bool:
    state = await connection.scalar(
        select(projection_status.c.state).where(projection_status.c.projection == projection)
    )
    return state == "halted"


async def open_failures(engine: AsyncEngine, projection: str | None = None) -> Sequence[Any]:
    query = select(failures).where(failures.c.status == "open").order_by(failures.c.failure_id)
    if projection:
        query = query.where(failures.c.projection == projection)
    async with engine.connect() as connection:
        return (await connection.execute(query)).all()


async def retry(engine: AsyncEngine, projection: Projection, failure_id: int) -> str:
    """Apply a failed message again; on success mark it resolved (and resume a halted projection).

    A halted projection stopped *before* the event, so resuming it re-applies
    the event from its checkpoint; a skipped event is applied here, out of
    order, which the read models tolerate (their writes are guarded by version).
    """
    async with engine.begin() as connection:
        row = (
            await connection.execute(select(failures).where(failures.c.failure_id == failure_id).with_for_update())
        ).one()
        if row.status != "open":
            return "already resolved"
        if await is_halted(connection, projection.name):
            await resume(connection, projection.name)
            outcome = "resumed: the projection re-applies it from its checkpoint"
        else:
            message = Message(row.topic, row.partition, row.offset, projection.topics[row.topic](row.payload.encode()))
            await projection.apply(connection, [message])
            outcome = "applied"
        await connection.execute(
            update(failures)
            .where(failures.c.failure_id == failure_id)
            .values(status="resolved", resolved_at=func.now())
        )
        return outcome
