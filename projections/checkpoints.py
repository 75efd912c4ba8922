"""Checkpoints: where each projection stands in each partition of its topics.

A batch's rows and its checkpoint move in one transaction. The move is
conditional on the checkpoint the runner started from, so a second runner
(a zombie after a rebalance) fails its transaction instead of applying twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import ARRAY, BigInteger, Integer, Text, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from projections.base import Projection
from projections.tables import checkpoints

# Key of one checkpoint: (topic without namespace, partition).
Slot = tuple[str, int]

NOTIFY_CHANNEL = "eventline_checkpoints"


class CheckpointMoved(RuntimeError):
    """Another runner advanced this checkpoint: our batch must not be applied."""


def partition_count(settings: Settings, short_topic: str) -> int:
    return settings.result_partitions if short_topic == "command-results" else settings.partitions


def slots_of(settings: Settings, projection: Projection) -> list[Slot]:
    """Every partition of every topic the projection reads, whether a runner has checkpointed it yet or not."""
    return [(topic, p) for topic in projection.topics for p in range(partition_count(settings, topic))]


async def ensure(connection: AsyncConnection, projection: str, slots: Iterable[Slot]) -> None:
    rows = [{"projection": projection, "topic": t, "partition": p, "next_offset": 0} for t, p in slots]
    if rows:
        await connection.execute(insert(checkpoints).on_conflict_do_nothing(), rows)


async def load(connection: AsyncConnection, projection: str) -> dict[Slot, int]:
    result = await connection.execute(
        select(checkpoints.c.topic, checkpoints.c.partition, checkpoints.c.next_offset).where(
            checkpoints.c.projection == projection
        )
    )
    return {(row.topic, row.partition): row.next_offset for row in result}


# One statement for every slot of every projection in a batch: a batch usually moves every
# partition, if only past transaction markers, and a round trip per slot was most of its cost.
# Arrays keep the statement's text the same however many slots move, so it is prepared once.
ADVANCE = text(f"""
    UPDATE {checkpoints.fullname} AS c SET next_offset = moved.new, updated_at = now()
    FROM unnest(:projections, :topics, :partitions, :expected, :new)
         AS moved(projection, topic, partition, expected, new)
    WHERE c.projection = moved.projection AND c.topic = moved.topic AND c.partition = moved.partition
      AND c.next_offset = moved.expected
""").bindparams(
    bindparam("projections", type_=ARRAY(Text)),
    bindparam("topics", type_=ARRAY(Text)),
    bindparam("partitions", type_=ARRAY(Integer)),
    bindparam("expected", type_=ARRAY(BigInteger)),
    bindparam("new", type_=ARRAY(BigInteger)),
)

LOCK_SHARED = text("SELECT pg_advisory_xact_lock_shared(key) FROM unnest(:keys) AS key").bindparams(
    bindparam("keys", type_=ARRAY(BigInteger))
)

NOTIFY = text("SELECT pg_notify(:channel, payload) FROM unnest(:payloads) AS payload").bindparams(
    bindparam("payloads", type_=ARRAY(Text))
)


async def advance(connection: AsyncConnection, projection: str, moves: Mapping[Slot, tuple[int, int]]) -> None:
    """Move each slot from its expected offset to the new one, or raise CheckpointMoved."""
    await advance_all(connection, {projection: moves})


async def advance_all(connection: AsyncConnection, moves: Mapping[str, Mapping[Slot, tuple[int, int]]]) -> None:
    """`advance` for several projections at once (projection → its moves)."""
    rows = [
        (projection, topic, partition, expected, new)
        for projection, slots in moves.items()
        for (topic, partition), (expected, new) in slots.items()
    ]
    if not rows:
        return
    projections, topics, partitions, expected, new = (list(column) for column in zip(*rows, strict=True))
    result = await connection.execute(
        ADVANCE,
        {"projections": projections, "topics": topics, "partitions": partitions, "expected": expected, "new": new},
    )
    if result.rowcount != len(rows):
        where = ", ".join(f"{p} {t}[{n}]@{e}" for p, t, n, e, _ in rows)
        raise CheckpointMoved(f"not all of {where} are where this runner left them")


async def lock_shared(connection: AsyncConnection, keys: Sequence[int]) -> None:
    """Advisory locks in shared mode until the transaction ends (a rebuild's swap takes one exclusively)."""
    await connection.execute(LOCK_SHARED, {"keys": list(keys)})


async def notify(connection: AsyncConnection, namespace: str, projections: Sequence[str]) -> None:
    """Wake read-your-writes waiters; delivered when the transaction commits."""
    await connection.execute(
        NOTIFY, {"channel": NOTIFY_CHANNEL, "payloads": [f"{namespace}|{name}" for name in projections]}
    )
