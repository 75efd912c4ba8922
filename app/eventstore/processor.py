"""The command processor: the single writer of each partition of the event store.

Processors form one consumer group on `<ns>.commands`. Owning command
partition p makes a processor the only writer of `<ns>.events` p, and every
batch of p's commands is applied in one Kafka transaction (events, aggregate
states, notifications, results and the consumed offsets), so a batch is either
wholly visible or not at all. See docs/write-path.md for the failure analysis.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord

from app.config import Settings
from app.eventstore.decision import Aggregate, Decision, decide_command, with_results
from app.eventstore.envelope import CommandEnvelope, CommandResult, Notification, utc_now
from app.eventstore.partitioner import partition_for
from app.eventstore.restore import restore_aggregates
from app.observability.logs import carrying
from app.observability.metrics import BATCHES, DEPENDENCY_ERRORS, EVENTS_APPENDED

log = logging.getLogger(__name__)

# Errors after which a writer's producer can no longer be trusted: it was replaced
# by a newer owner of the partition (a zombie), or its epoch was bumped.
FENCING_ERRORS: tuple[type[Exception], ...] = (ProducerFenced,)


class PartitionWriter:
    """Owns one command partition: its transactional producer and its aggregates."""

    def __init__(self, settings: Settings, partition: int, producer: AIOKafkaProducer,
                 aggregates: dict[str, Aggregate], next_offset: int) -> None:
        self.settings = settings
        self.partition = partition
        self.producer = producer
        self.aggregates = aggregates
        self.next_offset = next_offset
        self.source = TopicPartition(settings.topic("commands"), partition)

    async def apply(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Decide every command of the batch and write the outcome in one transaction."""
        fresh = [r for r in records if r.offset >= self.next_offset]
        if not fresh:
            return
        decisions, touched = self.decide(fresh)
        next_offset = fresh[-1].offset + 1
        async with self.producer.transaction():
            settled = await self.write(decisions, touched, next_offset)
        # Only now, with the transaction committed, does memory move forward.
        self.aggregates.update(settled)
        self.next_offset = next_offset
        BATCHES.labels("committed").inc()
        for decision in decisions:
            for event in decision.events:
                EVENTS_APPENDED.labels(event.aggregate_type).inc()
        log.debug("partition %d: committed %d commands up to offset %d", self.partition, len(fresh), next_offset)

    def decide(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> tuple[list[Decision], dict[str, Aggregate]]:
        """Run every command against the aggregates, in order, without touching Kafka."""
        touched: dict[str, Aggregate] = {}
        decisions = []
        now = utc_now()
        keep = self.settings.idempotency_memory
        for record in records:
            command = decode_command(record)
            if command is None:
                continue
            current = touched.get(command.aggregate_id) or self.aggregates.get(command.aggregate_id)
            with carrying(command.correlation_id, command.command_id):
                decision = decide_command(current, command, now=now, new_event_id=new_event_id, keep=keep)
                log.debug("decided %s %s: %s", command.type, command.aggregate_id, decision.result.outcome)
            after = decision.remembered_aggregate(keep)
            if after is not None:
                # Remembered at once, so a repeat later in this batch is caught too.
                touched[command.aggregate_id] = after
            decisions.append(decision)
        return decisions, touched

    async def write(self, decisions: list[Decision], touched: dict[str, Aggregate],
                    next_offset: int) -> dict[str, Aggregate]:
        """Produce the batch inside the open transaction; return the aggregates as written."""
        positions = await self.append_events(decisions)
        final: dict[str, CommandResult] = {}
        for decision in decisions:
            command_id = decision.command.command_id
            if decision.result.replayed and command_id in final:
                result = replace(final[command_id], replayed=True)  # repeated within this batch
            else:
                result = replace(decision.result, position=positions.get(command_id, decision.result.position))
                if decision.aggregate is not None and not decision.result.replayed:
                    final[command_id] = result
            await self.send_result(result)
        settled = {key: with_results(aggregate, final) for key, aggregate in touched.items()}
        for aggregate in settled.values():
            await self.send(self.settings.topic("aggregates"), aggregate.aggregate_id,
                            aggregate.to_record().encode())
        await self.producer.send_offsets_to_transaction(
            {self.source: next_offset}, self.settings.processor_group)
        return settled

    async def append_events(self, decisions: list[Decision]) -> dict[str, dict[str, int]]:
        """Send the events and their notifications; return each command's position."""
        published_at = utc_now()
        pending = []
        for decision in decisions:
            for event in decision.events:
                sent = await self.producer.send(
                    self.settings.topic("events"), event.encode(), key=event.aggregate_id.encode(),
                    partition=self.partition, headers=event.headers())
                pending.append((decision.command.command_id, sent))
                await self.send(self.settings.topic("notifications"), event.aggregate_id,
                                Notification.of(event, published_at).encode())
        positions: dict[str, dict[str, int]] = {}
        for command_id, sent in pending:
            metadata = await sent
            positions[command_id] = {str(self.partition): metadata.offset}
        return positions

    async def send(self, topic: str, key: str, value: bytes) -> None:
        await self.producer.send(topic, value, key=key.encode(), partition=self.partition)

    async def send_result(self, result: CommandResult) -> None:
        partition = partition_for(result.command_id, self.settings.result_partitions)
        await self.producer.send(self.settings.topic("command-results"), result.encode(),
                                 key=result.command_id.encode(), partition=partition)


def new_event_id() -> str:
    return str(uuid.uuid4())


def decode_command(record: ConsumerRecord[bytes, bytes]) -> CommandEnvelope | None:
    try:
        return CommandEnvelope.decode(record.value or b"")
    except (ValueError, TypeError):
        # Not ours to decide: nobody can be answered without a command id. Skip it,
        # but loudly, and let the offset move on so one bad message cannot block p.
        log.error("skipping undecodable command at %s offset %d", record.partition, record.offset)
        return None


class Processor(ConsumerRebalanceListener):  # type: ignore[misc]
    """Consumes commands, owns partitions, and keeps one writer per owned partition."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.writers: dict[int, PartitionWriter] = {}
        self.lock = asyncio.Lock()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, group_id=settings.processor_group,
            isolation_level="read_committed", enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=settings.processor_session_timeout_ms,
            heartbeat_interval_ms=max(1000, settings.processor_session_timeout_ms // 3),
            max_poll_interval_ms=settings.processor_max_poll_interval_ms,
        )

    async def run(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([self.settings.topic("commands")], listener=self)
        try:
            while True:
                try:
                    batch = await self.consumer.getmany(
                        timeout_ms=200, max_records=self.settings.processor_batch)
                except KafkaError as error:
                    log.warning("fetching commands failed (%r); retrying", error)
                    await asyncio.sleep(1)
                    continue
                if batch:
                    async with self.lock:
                        await asyncio.gather(*(self.apply(tp, records) for tp, records in batch.items()))
        finally:
            async with self.lock:
                await self.close_writers(list(self.writers))
            await self.consumer.stop()

    async def apply(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        writer = self.writers.get(tp.partition)
        if writer is None:
            return  # revoked or fenced meanwhile; the new owner replays these records
        try:
            await writer.apply(records)
        except FENCING_ERRORS:
            BATCHES.labels("fenced").inc()
            log.warning("partition %d: fenced by a newer owner; stopping it", tp.partition)
            self.consumer.pause(tp)
            await self.close_writers([tp.partition])
        except KafkaError as error:
            BATCHES.labels("aborted").inc()
            DEPENDENCY_ERRORS.labels("kafka").inc()
            log.warning("partition %d: batch aborted (%r); reloading and retrying", tp.partition, error)
            await self.reload(tp)

    async def reload(self, tp: TopicPartition) -> None:
        """After an aborted batch: a fresh producer, and back to the last committed offset."""
        await self.close_writers([tp.partition])
        await asyncio.sleep(0.5)
        await self.open_writers([tp.partition])

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The lock waits for an in-flight batch: its transaction commits or aborts first.
        async with self.lock:
            await self.close_writers([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self.lock:
            await self.open_writers([tp.partition for tp in assigned])

    async def open_writers(self, partitions: list[int]) -> None:
        """Take partitions over, retrying while Kafka is unreachable (owning p without a writer would stall p)."""
        while True:
            try:
                await self.take_over(partitions)
                log.info("owning partitions %s", sorted(self.writers))
                return
            except KafkaError as error:
                log.warning("taking over partitions %s failed (%r); retrying", partitions, error)
                await self.close_writers(partitions)
                await asyncio.sleep(1)

    async def take_over(self, partitions: list[int]) -> None:
        """Fence, then read offsets, then restore: in that order, or a zombie's work could resurface."""
        started = await asyncio.gather(*(fence_partition(self.settings, p) for p in partitions),
                                       return_exceptions=True)
        producers = [p for p in started if isinstance(p, AIOKafkaProducer)]
        if len(producers) < len(started):
            await asyncio.gather(*(stop_quietly(p) for p in producers))
            raise next(e for e in started if isinstance(e, BaseException))
        restored = await restore_aggregates(self.settings, partitions)
        for partition, producer in zip(partitions, producers, strict=True):
            tp = TopicPartition(self.settings.topic("commands"), partition)
            committed = await self.consumer.committed(tp)
            next_offset = committed or 0
            self.consumer.seek(tp, next_offset)
            self.consumer.resume(tp)
            self.writers[partition] = PartitionWriter(
                self.settings, partition, producer, restored[partition], next_offset)

    async def close_writers(self, partitions: list[int]) -> None:
        writers = [self.writers.pop(p) for p in partitions if p in self.writers]
        await asyncio.gather(*(stop_quietly(w.producer) for w in writers), return_exceptions=True)


async def fence_partition(settings: Settings, partition: int) -> AIOKafkaProducer:
    """Start p's transactional producer: obtaining its producer id fences older owners.

    aiokafka requests the producer id inside `start()` (the sender waits for
    it before starting), and the coordinator answers only once the previous
    owner's open transaction is aborted.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        transactional_id=f"{settings.namespace}.processor.{partition}",
        enable_idempotence=True, acks="all", linger_ms=settings.processor_linger_ms,
        transaction_timeout_ms=settings.processor_transaction_timeout_ms,
        # Back-to-back transactions: the broker answers a produce that races the previous
        # commit's markers with a retriable error (NOT_ENOUGH_REPLICAS for this protocol
        # version). Retry soon rather than after the default 100 ms.
        retry_backoff_ms=10,
    )
    await producer.start()
    return producer


async def stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception as error:  # a fenced producer may fail to flush; it has nothing to save
        log.debug("producer stop: %r", error)


async def run_processor(settings: Settings) -> None:
    """Run one processor until cancelled."""
    await Processor(settings).run()
