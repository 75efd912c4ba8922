"""Checkpoints: where each projection stands in each partition of its topics.

A batch's rows and its checkpoint move in one transaction. The move is
conditional on the checkpoint the runner started from, so a second runner
(a zombie after a rebalance) fails its transaction instead of applying twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import ARRAY, BigInteger, Integer, Text, bindparam, select, text
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


# One statement for all slots of a batch: a batch usually moves every partition, if only
# past transaction markers, and a round trip per slot was most of its cost. Arrays keep the
# statement's text the same whatever the number of slots, so it is compiled and prepared once.
ADVANCE = text(f"""
    UPDATE {checkpoints.fullname} AS c SET next_offset = moved.new, updated_at = now()
    FROM unnest(:topics, :partitions, :expected, :new) AS moved(topic, partition, expected, new)
    WHERE c.projection = :projection
      AND c.topic = moved.topic AND c.partition = moved.partition AND c.next_offset = moved.expected
""").bindparams(bindparam("topics", type_=ARRAY(Text)), bindparam("partitions", type_=ARRAY(Integer)),
                bindparam("expected", type_=ARRAY(BigInteger)), bindparam("new", type_=ARRAY(BigInteger)))


async def advance(connection: AsyncConnection, projection: str, moves: Mapping[Slot, tuple[int, int]]) -> None:
    """Move each slot from its expected offset to the new one, or raise CheckpointMoved."""
    if not moves:
        return
    slots = list(moves)
    result = await connection.execute(ADVANCE, {
        "projection": projection, "topics": [topic for topic, _ in slots],
        "partitions": [partition for _, partition in slots],
        "expected": [moves[slot][0] for slot in slots], "new": [moves[slot][1] for slot in slots],
    })
    if result.rowcount != len(moves):
        where = ", ".join(f"{topic}[{partition}]@{moves[topic, partition][0]}" for topic, partition in slots)
        raise CheckpointMoved(f"{projection}: not all of {where} are where this runner left them")


async def notify(connection: AsyncConnection, namespace: str, projection: str) -> None:
    """Wake read-your-writes waiters; delivered when the transaction commits."""
    await connection.execute(text("SELECT pg_notify(:channel, :payload)"),
                             {"channel": NOTIFY_CHANNEL, "payload": f"{namespace}|{projection}"})
