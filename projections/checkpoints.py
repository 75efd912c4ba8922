"""Checkpoints: where each projection stands in each partition of its topics.

A batch's rows and its checkpoint move in one transaction. The move is
conditional on the checkpoint the runner started from, so a second runner
(a zombie after a rebalance) fails its transaction instead of applying twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.tables import checkpoints

# Key of one checkpoint: (topic without namespace, partition).
Slot = tuple[str, int]

NOTIFY_CHANNEL = "eventline_checkpoints"


class CheckpointMoved(RuntimeError):
    """Another runner advanced this checkpoint: our batch must not be applied."""


async def ensure(connection: AsyncConnection, projection: str, slots: Iterable[Slot]) -> None:
    rows = [{"projection": projection, "topic": t, "partition": p, "next_offset": 0} for t, p in slots]
    if rows:
        await connection.execute(insert(checkpoints).on_conflict_do_nothing(), rows)


async def load(connection: AsyncConnection, projection: str) -> dict[Slot, int]:
    result = await connection.execute(
        select(checkpoints.c.topic, checkpoints.c.partition, checkpoints.c.next_offset)
        .where(checkpoints.c.projection == projection))
    return {(row.topic, row.partition): row.next_offset for row in result}


async def advance(connection: AsyncConnection, projection: str, moves: Mapping[Slot, tuple[int, int]]) -> None:
    """Move each slot from its expected offset to the new one, or raise CheckpointMoved."""
    for (topic, partition), (expected, new) in moves.items():
        result = await connection.execute(
            update(checkpoints)
            .where(and_(checkpoints.c.projection == projection, checkpoints.c.topic == topic,
                        checkpoints.c.partition == partition, checkpoints.c.next_offset == expected))
            .values(next_offset=new, updated_at=func.now()))
        if result.rowcount != 1:
            raise CheckpointMoved(f"{projection} {topic}[{partition}] is no longer at {expected}")


async def notify(connection: AsyncConnection, namespace: str, projection: str) -> None:
    """Wake read-your-writes waiters; delivered when the transaction commits."""
    await connection.execute(text("SELECT pg_notify(:channel, :payload)"),
                             {"channel": NOTIFY_CHANNEL, "payload": f"{namespace}|{projection}"})
