"""Restore: how long a processor takes to load its aggregates from `<ns>.aggregates`.

N aggregate records (an account opened and credited once, with both commands
remembered, as the processor writes them) are produced straight onto the
compacted state topic; then `restore_aggregates` reads all partitions, as a
processor that owns every partition does on assignment. Baseline: reading
the same records with aiokafka, without decoding them.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from app.api.submission import envelope
from app.config import Settings
from app.domain import accounts
from app.eventstore.decision import Aggregate, decide_command
from app.eventstore.envelope import utc_now
from app.eventstore.partitioner import partition_for
from app.eventstore.restore import restore_aggregates
from bench.ceiling import deposit_command
from bench.setup import read_to_end


def template(account_id: str, keep: int) -> bytes:
    """An account's record after OpenAccount and one Deposit, through the processor's own decision code."""
    opened = envelope(accounts.OpenAccount(owner="Bench Owner", currency="EUR"), accounts.AGGREGATE_TYPE, account_id)
    aggregate: Aggregate | None = None
    for command in (opened, deposit_command(account_id)):
        decision = decide_command(aggregate, command, now=utc_now(), new_event_id=lambda: str(uuid.uuid4()),
                                  keep=keep)
        aggregate = decision.remembered_aggregate(keep)
    assert aggregate is not None
    return aggregate.to_record().encode()


async def produce_aggregates(settings: Settings, count: int) -> int:
    model_id = str(uuid.uuid4())
    model = template(model_id, settings.idempotency_memory)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        for _ in range(count):
            account_id = str(uuid.uuid4())
            await producer.send(settings.topic("aggregates"), model.replace(model_id.encode(), account_id.encode()),
                                key=account_id.encode(), partition=partition_for(account_id, settings.partitions))
        await producer.flush()
    finally:
        await producer.stop()
    return len(model)


async def read_baseline(settings: Settings) -> float:
    _, seconds = await read_to_end(settings, "aggregates", max_partition_fetch_bytes=8 * 1024 * 1024,
                                   fetch_max_bytes=64 * 1024 * 1024)
    return seconds


async def measure_restore(settings: Settings, count: int) -> dict[str, Any]:
    record_bytes = await produce_aggregates(settings, count)
    baseline_s = await read_baseline(settings)
    started = time.monotonic()
    restored = await restore_aggregates(settings, list(range(settings.partitions)))
    seconds = time.monotonic() - started
    found = sum(len(a) for a in restored.values())
    if found != count:
        raise RuntimeError(f"restored {found} aggregates, expected {count}")
    return {"aggregates": count, "record_bytes": record_bytes, "seconds": seconds,
            "aggregates_per_s": count / seconds, "read_only_seconds": baseline_s}
