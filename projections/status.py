"""Where every projection stands: checkpoints against Kafka's end offsets (lag), state, failures, stalls.

A partition is *stalled* when the log holds events the projection has not
applied (lag above 0) and its checkpoint has not moved for longer than
`EVENTLINE_PROJECTION_STALL_AFTER_S`. Lag alone cannot tell a projection that is
catching up from one that stopped: a stopped one can show a small lag for
ever. A caught-up projection's checkpoint may be old; it is not stalled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from projections import checkpoints, queries
from projections.checkpoints import Slot
from projections.registry import PROJECTIONS


async def projection_status(
    settings: Settings, engine: AsyncEngine, consumer: AIOKafkaConsumer
) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        overview = await queries.projection_overview(connection)
    for name, projection in PROJECTIONS.items():
        with_unread_partitions(overview.setdefault(name, {}), checkpoints.slots_of(settings, projection))
    ends = await end_offsets(consumer, settings, overview)
    views = []
    for name in sorted(set(PROJECTIONS) | {n for n in overview if "@" not in n}):
        entry = overview.get(name, {})
        partitions = [progress(c, ends, settings.projection_stall_after_s) for c in entry.get("checkpoints", [])]
        lags = [p["lag"] for p in partitions]
        ages = [p["checkpoint_age_s"] for p in partitions if p["lag"]]
        views.append(
            {
                "name": name,
                "state": entry.get("state", "running"),
                "halted_reason": entry.get("halted_reason"),
                "lag": None if not lags or None in lags else sum(lags),
                "failures": entry.get("failures", 0),
                "stalled": any(p["stalled"] for p in partitions),
                # How long the oldest unapplied work has waited for its checkpoint to move (lagging partitions only).
                "checkpoint_age_s": max((a for a in ages if a is not None), default=None),
                "partitions": partitions,
                "rebuild": with_progress(entry.get("rebuild"), overview.get(f"{name}@rebuild"), ends),
            }
        )
    return views


def with_progress(
    rebuild: dict[str, Any] | None, replay: dict[str, Any] | None, ends: dict[tuple[str, int], int]
) -> dict[str, Any] | None:
    """A replaying rebuild's progress: events applied (its own checkpoints) against the log's end now."""
    if rebuild is None or rebuild.get("state") != "replaying" or not replay or not ends:
        return rebuild
    checkpointed = replay.get("checkpoints", [])
    done = sum(c["next_offset"] for c in checkpointed)
    total = sum(ends.get((c["topic"], c["partition"]), c["next_offset"]) for c in checkpointed)
    return {**rebuild, "done": done, "total": total}


def with_unread_partitions(entry: dict[str, Any], slots: Iterable[Slot]) -> None:
    """A partition no runner has checkpointed yet is unread from its start, not caught up: it counts in the lag.

    A runner writes a partition's checkpoint when the partition is first assigned to it, so one
    that the group gave to a member that died before starting (or that no runner has reached)
    has none; leaving it out would show a lag of 0 for a projection that never read it.
    """
    have = {(c["topic"], c["partition"]) for c in entry.setdefault("checkpoints", [])}
    entry["checkpoints"] += [
        {"topic": topic, "partition": partition, "next_offset": 0, "updated_at": None, "age_s": None}
        for topic, partition in slots
        if (topic, partition) not in have
    ]
    entry["checkpoints"].sort(key=lambda c: (c["topic"], c["partition"]))


def progress(checkpoint: dict[str, Any], ends: dict[tuple[str, int], int], stall_after_s: float) -> dict[str, Any]:
    end = ends.get((checkpoint["topic"], checkpoint["partition"]))
    lag = None if end is None else max(0, end - checkpoint["next_offset"])
    age = checkpoint.get("age_s")
    return {
        "topic": checkpoint["topic"],
        "partition": checkpoint["partition"],
        "next_offset": checkpoint["next_offset"],
        "end_offset": end,
        "lag": lag,
        "checkpoint_age_s": age,
        # Unread and never checkpointed (no runner has it) counts as stalled too: no one is reading it.
        "stalled": bool(lag) and (age is None or age > stall_after_s),
    }


async def end_offsets(
    consumer: AIOKafkaConsumer, settings: Settings, overview: dict[str, dict[str, Any]]
) -> dict[tuple[str, int], int]:
    """Kafka's end offsets (read_committed: the last stable offset) of every checkpointed partition."""
    slots = {(c["topic"], c["partition"]) for entry in overview.values() for c in entry.get("checkpoints", [])}
    if not slots:
        return {}
    try:
        return await asyncio.wait_for(ends_of(consumer, settings, slots), settings.readiness_timeout_s)
    except (KafkaError, TimeoutError):
        return {}  # lag unknown while Kafka is away; the checkpoints are still worth showing


async def ends_of(consumer: AIOKafkaConsumer, settings: Settings, slots: Iterable[Slot]) -> dict[Slot, int]:
    """The end offsets (read_committed: last stable offsets) of these partitions, by slot."""
    tps = {TopicPartition(settings.topic(topic), partition): (topic, partition) for topic, partition in slots}
    found = await consumer.end_offsets(list(tps))
    return {tps[tp]: offset for tp, offset in found.items()}
