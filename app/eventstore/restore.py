"""Rebuild a partition's memory from the compacted `<ns>.aggregates` topic.

The changelog holds two kinds of record: aggregate states (key: the aggregate
id) and remembered commands (key: `command:<id>`, see idempotency.py). Read
committed, from the beginning to the end offset taken when the restore
starts. That end is stable: the caller has fenced every earlier writer of
these partitions, so nothing else can append to them meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.config import Settings
from app.eventstore.bad_records import UNREADABLE, skip_bad_record
from app.eventstore.decision import Aggregate
from app.eventstore.envelope import AggregateRecord
from app.eventstore.idempotency import IdempotencyMemory, is_command_key, now_ms
from app.eventstore.kafka import connection

log = logging.getLogger(__name__)


@dataclass
class Restored:
    """One partition's aggregates and the commands it remembers."""

    memory: IdempotencyMemory
    aggregates: dict[str, Aggregate] = field(default_factory=dict)

    def apply(self, key: bytes, timestamp_ms: int, value: bytes | None, now: int) -> None:
        if is_command_key(key):
            self.memory.restore(key, timestamp_ms, value, now)
        elif value is None:  # a tombstone: the aggregate was forgotten
            self.aggregates.pop(key.decode(), None)
        else:
            record = AggregateRecord.decode(value)
            aggregate = Aggregate.from_record(record)
            self.aggregates[aggregate.aggregate_id] = aggregate
            self.memory.adopt(record.recent, timestamp_ms, now)


async def restore_partitions(settings: Settings, partitions: list[int]) -> dict[int, Restored]:
    restored = {p: Restored(IdempotencyMemory(settings.idempotency_retention_ms)) for p in partitions}
    if not partitions:
        return restored
    started = time.monotonic()
    topic = settings.topic("aggregates")
    consumer = AIOKafkaConsumer(
        **connection(settings),
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        now = now_ms()
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                into = restored[tp.partition]
                for record in records:
                    try:
                        into.apply(record.key or b"", record.timestamp, record.value, now)
                    except UNREADABLE as error:  # not written by a processor: the takeover goes on
                        skip_bad_record("processor-restore", record, error)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    count = sum(len(r.aggregates) for r in restored.values())
    remembered = sum(len(r.memory) for r in restored.values())
    log.info(
        "restored %d aggregates and %d remembered commands of partitions %s in %.2fs",
        count,
        remembered,
        partitions,
        time.monotonic() - started,
    )
    return restored
