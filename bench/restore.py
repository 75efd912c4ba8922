"""Restore: how long a processor takes to load its aggregates from `<ns>.aggregates`.

N aggregate records (an account opened and credited once, as the processor
writes them) are produced straight onto the compacted state topic; then
`restore_partitions` reads all partitions, as a processor that owns every
partition does on assignment. Baseline: reading the same records with
aiokafka, without decoding them.

The idempotency memory is measured the same way: K remembered commands (a
deposit's result, as the writer keeps it) on one partition, restored, with the
memory the restored entries hold (resident set before and after).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer

from app.config import Settings
from app.domain import accounts
from app.eventstore.decision import Aggregate, decide_command
from app.eventstore.envelope import RememberedCommand, new_command, utc_now
from app.eventstore.idempotency import now_ms, record_key
from app.eventstore.partitioner import partition_for
from app.eventstore.restore import restore_partitions
from bench.ceiling import deposit_command
from bench.setup import bench_settings, delete_namespace_topics, drop_database, read_to_end


def template(account_id: str) -> bytes:
    """An account's record after OpenAccount and one Deposit, through the processor's own decision code."""
    opened = new_command(accounts.OpenAccount(owner="Bench Owner", currency="EUR"), account_id, principal="anonymous")
    aggregate: Aggregate | None = None
    for command in (opened, deposit_command(account_id)):
        decision = decide_command(aggregate, command, now=utc_now(), new_event_id=lambda: str(uuid.uuid4()))
        aggregate = decision.aggregate
    assert aggregate is not None
    return aggregate.to_record().encode()


def remembered_template(command_id: str) -> bytes:
    """A deposit's remembered answer, as the writer puts it on the changelog."""
    account_id = str(uuid.uuid4())
    opened = new_command(accounts.OpenAccount(owner="Bench Owner", currency="EUR"), account_id, principal="anonymous")
    now = utc_now()
    aggregate = decide_command(None, opened, now=now, new_event_id=lambda: str(uuid.uuid4())).aggregate
    decision = decide_command(aggregate, deposit_command(account_id), now=now, new_event_id=lambda: str(uuid.uuid4()))
    result = decision.result
    positioned = type(result)(
        command_id,
        result.command_id,
        result.outcome,
        result.version,
        {"0": 123_456_789},
        result.event_ids,
        result.error,
        False,
        result.decided_at,
    )
    return RememberedCommand(command_id, "f" * 32, positioned).encode()


@asynccontextmanager
async def bulk_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    """A producer for loading a topic fast: large batches, a short linger."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def produce_aggregates(settings: Settings, count: int) -> int:
    model_id = str(uuid.uuid4())
    model = template(model_id)
    async with bulk_producer(settings) as producer:
        for _ in range(count):
            account_id = str(uuid.uuid4())
            await producer.send(
                settings.topic("aggregates"),
                model.replace(model_id.encode(), account_id.encode()),
                key=account_id.encode(),
                partition=partition_for(account_id, settings.partitions),
            )
        await producer.flush()
    return len(model)


async def read_baseline(settings: Settings) -> float:
    _, seconds = await read_to_end(
        settings, "aggregates", max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024
    )
    return seconds


async def measure_restore(settings: Settings, count: int) -> dict[str, Any]:
    record_bytes = await produce_aggregates(settings, count)
    baseline_s = await read_baseline(settings)
    started = time.monotonic()
    restored = await restore_partitions(settings, list(range(settings.partitions)))
    seconds = time.monotonic() - started
    found = sum(len(r.aggregates) for r in restored.values())
    if found != count:
        raise RuntimeError(f"restored {found} aggregates, expected {count}")
    return {
        "aggregates": count,
        "record_bytes": record_bytes,
        "seconds": seconds,
        "aggregates_per_s": count / seconds,
        "read_only_seconds": baseline_s,
    }


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


async def measure_idempotency(settings: Settings, count: int) -> dict[str, Any]:
    """`count` remembered commands on partition 0, restored: seconds and bytes held per entry."""
    model_id = str(uuid.uuid4())
    model = remembered_template(model_id)
    async with bulk_producer(settings) as producer:
        at = now_ms()
        for _ in range(count):
            command_id = str(uuid.uuid4())
            await producer.send(
                settings.topic("aggregates"),
                model.replace(model_id.encode(), command_id.encode()),
                key=record_key(command_id),
                partition=0,
                timestamp_ms=at,
            )
        await producer.flush()
    before = resident_bytes()
    started = time.monotonic()
    restored = await restore_partitions(settings, [0])
    seconds = time.monotonic() - started
    held = resident_bytes() - before
    found = len(restored[0].memory)
    if found != count:
        raise RuntimeError(f"restored {found} remembered commands, expected {count}")
    return {
        "remembered": count,
        "record_bytes": len(model),
        "seconds": seconds,
        "resident_bytes": held,
        "bytes_per_entry": held / count,
    }


async def idempotency_only(count: int) -> dict[str, Any]:
    """The idempotency figure alone: `python -m bench.restore [count]` (Kafka and PostgreSQL up)."""
    settings = await bench_settings()
    try:
        return await measure_idempotency(settings, count)
    finally:
        await delete_namespace_topics(settings)
        await drop_database(settings)


if __name__ == "__main__":
    import json
    import sys

    import uvloop

    print(json.dumps(uvloop.run(idempotency_only(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)), indent=2))
