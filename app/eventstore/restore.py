"""Rebuild the processor's in-memory aggregates from the compacted `<ns>.aggregates` topic.

Read committed, from the beginning to the end offset taken when the restore
starts. That end is stable: the caller has fenced every earlier writer of
these partitions, so nothing else can append to them meanwhile.
"""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.config import Settings
from app.eventstore.decision import Aggregate
from app.eventstore.envelope import AggregateRecord

log = logging.getLogger(__name__)


async def restore_aggregates(settings: Settings, partitions: list[int]) -> dict[int, dict[str, Aggregate]]:
    restored: dict[int, dict[str, Aggregate]] = {p: {} for p in partitions}
    if not partitions:
        return restored
    started = time.monotonic()
    topic = settings.topic("aggregates")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed",
        enable_auto_commit=False, auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                aggregates = restored[tp.partition]
                for record in records:
                    if record.value is None:  # a tombstone: the aggregate was forgotten
                        aggregates.pop(record.key.decode(), None)
                        continue
                    aggregate = Aggregate.from_record(AggregateRecord.decode(record.value))
                    aggregates[aggregate.aggregate_id] = aggregate
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    count = sum(len(a) for a in restored.values())
    log.info("restored %d aggregates of partitions %s in %.2fs", count, partitions, time.monotonic() - started)
    return restored
