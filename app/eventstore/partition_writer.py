"""A partition's writer: decide a batch of commands and write all of it in one Kafka transaction.

The writer holds the aggregates of its partition in memory; they move forward
only after a transaction commits, so an aborted batch leaves nothing to undo.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord, RecordMetadata

from app.config import Settings
from app.eventstore.bad_records import UNREADABLE, skip_bad_record
from app.eventstore.decision import Aggregate, Decision, decide_command
from app.eventstore.envelope import CommandEnvelope, CommandResult, Notification, RememberedCommand, utc_now
from app.eventstore.idempotency import IdempotencyMemory, now_ms, record_key
from app.eventstore.kafka import sender_failure
from app.observability.logs import carrying
from app.observability.metrics import BATCHES, EVENTS_APPENDED

log = logging.getLogger(__name__)

ABORT_TIMEOUT_S = 5.0


class TransactionStuck(KafkaError):  # type: ignore[misc]
    """A transaction did not finish within its timeout: abandon it and take the partition over."""

    def __init__(self, partition: int) -> None:
        super().__init__(f"partition {partition}: a transaction did not finish within its timeout")


class EventOffsetMispredicted(KafkaError):  # type: ignore[misc]
    """Something else took offsets in our event partition: a foreign producer's record, or a second
    commit marker written by a transaction coordinator that took over. The batch is aborted; once
    the abort went through (`aborted`), it is written again with offsets learned from the acks."""

    def __init__(self, partition: int, predicted: int, written: int) -> None:
        super().__init__(f"partition {partition}: an event expected at offset {predicted} landed at {written}")
        self.aborted = False


@dataclass(slots=True)
class Batch:
    """What one batch decided, before it is written: nothing here is in memory yet."""

    decisions: list[Decision] = field(default_factory=list)
    touched: dict[str, Aggregate] = field(default_factory=dict)
    remembered: dict[str, RememberedCommand] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)


class PartitionWriter:
    """Owns one command partition: its transactional producer, its aggregates and what it remembers."""

    def __init__(
        self,
        settings: Settings,
        partition: int,
        producer: AIOKafkaProducer,
        aggregates: dict[str, Aggregate],
        next_offset: int,
        memory: IdempotencyMemory | None = None,
    ) -> None:
        self.settings = settings
        self.partition = partition
        self.producer = producer
        self.aggregates = aggregates
        self.memory = memory if memory is not None else IdempotencyMemory(settings.idempotency_retention_ms)
        self.next_offset = next_offset
        # Where this partition's next event will land; unknown until our first transaction's acks.
        self.next_event_offset: int | None = None
        self.source = TopicPartition(settings.topic("commands"), partition)

    async def apply(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Decide every command of the batch and write the outcome in one transaction."""
        fresh = [r for r in records if r.offset >= self.next_offset]
        if not fresh:
            return
        batch = self.decide(fresh)
        next_offset = fresh[-1].offset + 1
        try:
            remembered_at, next_event_offset = await self.in_transaction(batch, next_offset)
        except EventOffsetMispredicted as mispredicted:
            if not mispredicted.aborted:
                raise  # the producer is in doubt: take the partition over
            # Nothing of the batch is in memory or in the log (aborted): write the same batch
            # again with the same producer, learning the offsets from the acks. A takeover (new
            # producer, restore) would cost seconds for what one more round trip settles.
            log.warning("%s; writing the batch again with offsets from the acks", mispredicted)
            BATCHES.labels("rewritten").inc()
            self.next_event_offset = None
            remembered_at, next_event_offset = await self.in_transaction(batch, next_offset)
        # Only now, with the transaction committed, does memory move forward.
        self.aggregates.update(batch.touched)
        for command_id, entry in batch.remembered.items():
            self.memory.remember(command_id, remembered_at, entry.encode())
        self.next_offset = next_offset
        self.next_event_offset = next_event_offset
        BATCHES.labels("committed").inc()
        for decision in batch.decisions:
            for event in decision.events:
                EVENTS_APPENDED.labels(event.aggregate_type).inc()
        log.debug("partition %d: committed %d commands up to offset %d", self.partition, len(fresh), next_offset)

    async def in_transaction(self, batch: Batch, next_offset: int) -> tuple[int, int | None]:
        """`write` in one transaction that cannot hang the partition.

        aiokafka retries some transactional requests without end (while a restarted
        broker reloads, say). Past the transaction timeout the broker aborts the
        transaction anyway, so the writer gives up, and the partition is taken over
        afresh. The abort is bounded too: when it cannot finish, the next owner's
        fencing finishes it.
        """
        try:
            await self.producer.begin_transaction()
            async with asyncio.timeout(self.settings.processor_transaction_timeout_ms / 1000):
                written = await self.write(batch, next_offset)
                await self.producer.commit_transaction()
            return written
        except BaseException as failure:
            aborted = await self.abort_quietly()
            if isinstance(failure, EventOffsetMispredicted):
                failure.aborted = aborted
            if isinstance(failure, TimeoutError):
                raise TransactionStuck(self.partition) from failure
            if (cause := sender_failure(self.producer)) is not None and cause is not failure:
                raise named_after(cause, self.partition) from failure
            raise

    async def abort_quietly(self) -> bool:
        """Abort the open transaction; True when the abort went through."""
        try:
            async with asyncio.timeout(ABORT_TIMEOUT_S):
                await self.producer.abort_transaction()
        except Exception as error:  # fenced, already failed, or stuck: the partition is taken over next
            log.debug("partition %d: abort: %r", self.partition, error)
            return False
        return True

    def decide(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> Batch:
        """Run every command against the aggregates, in order, without touching Kafka."""
        batch = Batch(expired=self.memory.expire(now_ms()))
        now = utc_now()
        for record in records:
            command = decode_command(record)
            if command is None:
                continue
            current = batch.touched.get(command.aggregate_id) or self.aggregates.get(command.aggregate_id)
            # Looked up in this batch first, so a repeat later in the same batch is caught too.
            remembered = batch.remembered.get(command.command_id) or self.memory.get(command.command_id)
            with carrying(command.correlation_id, command.command_id):
                decision = decide_command(current, command, now=now, new_event_id=new_event_id, remembered=remembered)
                log.debug("decided %s %s: %s", command.type, command.aggregate_id, decision.result.outcome)
            if decision.aggregate is not None:
                batch.touched[command.aggregate_id] = decision.aggregate
            if decision.to_remember:
                batch.remembered[command.command_id] = decision.remembered(decision.result)
            batch.decisions.append(decision)
        return batch

    async def write(self, batch: Batch, next_offset: int) -> tuple[int, int | None]:
        """Produce the batch inside the open transaction.

        Returns when its remembered commands were written and where the partition's next
        event will land. Results carry the offsets of their events. Once this writer knows
        where its log ends, it predicts them, so the whole batch goes out at once and the
        transaction needs four round trips instead of six; the acks are checked before the commit.
        """
        acks = await self.append_events(batch.decisions)
        if self.next_event_offset is None:
            # The first events since taking the partition over: learn the offsets from the acks.
            offsets = [(await ack).offset for _, ack in acks]
        else:
            offsets = list(range(self.next_event_offset, self.next_event_offset + len(acks)))
        positions = {
            command_id: {str(self.partition): offset} for (command_id, _), offset in zip(acks, offsets, strict=True)
        }
        await self.send_results(batch, positions)
        remembered_at = await self.send_changelog(batch)
        # The offsets go alongside the produce; the acks are awaited first, because a produce that
        # fails (a broker restart) fails its ack, while the offsets' answer may never come then.
        offsets_sent = asyncio.ensure_future(
            self.producer.send_offsets_to_transaction({self.source: next_offset}, self.settings.processor_group)
        )
        offsets_sent.add_done_callback(retrieve_error)
        try:
            for (_, ack), predicted in zip(acks, offsets, strict=True):
                if (written := (await ack).offset) != predicted:
                    raise EventOffsetMispredicted(self.partition, predicted, written)
            await offsets_sent
        finally:
            offsets_sent.cancel()  # no-op once done
        # A committed transaction leaves one marker after its last event in the partition.
        return remembered_at, (offsets[-1] + 2 if offsets else self.next_event_offset)

    async def append_events(self, decisions: list[Decision]) -> list[tuple[str, asyncio.Future[RecordMetadata]]]:
        """Send the events and their notifications; return each event's command and ack, in log order."""
        published_at = utc_now()
        acks = []
        for decision in decisions:
            for event in decision.events:
                ack = await self.send(
                    self.settings.topic("events"), event.aggregate_id.encode(), event.encode(), headers=event.headers()
                )
                acks.append((decision.command.command_id, ack))
                await self.send(
                    self.settings.topic("notifications"),
                    event.aggregate_id.encode(),
                    Notification.of(event, published_at).encode(),
                )
        return acks

    async def send_results(self, batch: Batch, positions: dict[str, dict[str, int]]) -> None:
        """Send each command's result, with the position of its events."""
        final: dict[str, CommandResult] = {}
        partition = self.results_partition()
        for decision in batch.decisions:
            command_id = decision.command.command_id
            if decision.result.replayed and command_id in final:
                result = replace(final[command_id], replayed=True)  # repeated within this batch
            else:
                result = replace(decision.result, position=positions.get(command_id, decision.result.position))
                if decision.to_remember:
                    final[command_id] = result
                    batch.remembered[command_id] = decision.remembered(result)
            await self.send_result(result, partition)

    async def send_changelog(self, batch: Batch) -> int:
        """Send each touched aggregate, each command to remember, each expired one's tombstone.

        Returns the time the remembered commands carry: their retention counts from it.
        """
        changelog = self.settings.topic("aggregates")
        for aggregate in batch.touched.values():
            await self.send(changelog, aggregate.aggregate_id.encode(), aggregate.to_record().encode())
        # Tombstones before the new entries: a key that expired and came back in this batch stays.
        for command_id in batch.expired:
            if command_id not in batch.remembered:
                await self.send(changelog, record_key(command_id), None)
        remembered_at = now_ms()
        for command_id, entry in batch.remembered.items():
            await self.send(changelog, record_key(command_id), entry.encode(), timestamp_ms=remembered_at)
        return remembered_at

    async def send(self, topic: str, key: bytes, value: bytes | None, **options: Any) -> asyncio.Future[RecordMetadata]:
        """Send into this partition of `topic`; an aborted batch's unawaited acks are not an error to log."""
        ack: asyncio.Future[RecordMetadata] = await self.producer.send(
            topic, value, key=key, partition=self.partition, **options
        )
        ack.add_done_callback(retrieve_error)
        return ack

    async def send_result(self, result: CommandResult, partition: int) -> None:
        ack = await self.producer.send(
            self.settings.topic("command-results"),
            result.encode(),
            key=result.command_id.encode(),
            partition=partition,
        )
        ack.add_done_callback(retrieve_error)

    def results_partition(self) -> int:
        """Where this partition's results go: every API process reads every result partition,
        so any will do. One per command partition keeps a transaction to few partitions; one
        led by the broker that leads this partition's events keeps it to as few brokers, so a
        broker that dies pauses only the partitions it led (see topics.co_located)."""
        fallback = self.partition % self.settings.result_partitions
        cluster = self.producer.client.cluster
        leader = cluster.leader_for_partition(TopicPartition(self.settings.topic("events"), self.partition))
        if leader is None or leader < 0:
            return fallback
        results = self.settings.topic("command-results")
        alike = [
            r
            for r in range(self.settings.result_partitions)
            if cluster.leader_for_partition(TopicPartition(results, r)) == leader
        ]
        return alike[self.partition % len(alike)] if alike else fallback


class ProducerStopped(KafkaError):  # type: ignore[misc]
    """The producer's sender ended on an error other than fencing: take the partition over afresh."""

    def __init__(self, partition: int, cause: BaseException) -> None:
        super().__init__(f"partition {partition}: the producer stopped sending ({cause!r})")


def named_after(cause: BaseException, partition: int) -> KafkaError:
    """What a dead producer's failure means for the partition: fenced, or take it over again."""
    if isinstance(cause, ProducerFenced):
        return ProducerFenced()
    return ProducerStopped(partition, cause)


def retrieve_error(future: asyncio.Future[Any]) -> None:
    """An aborted batch never awaits some futures: their error is the transaction's, handled there."""
    if not future.cancelled():
        future.exception()


def new_event_id() -> str:
    return str(uuid.uuid4())


def decode_command(record: ConsumerRecord[bytes, bytes]) -> CommandEnvelope | None:
    try:
        return CommandEnvelope.decode(record.value or b"")
    except UNREADABLE as error:
        # Not ours to decide: nobody can be answered without a command id. Skip it,
        # but loudly, and let the offset move on so one bad message cannot block p.
        skip_bad_record("processor", record, error)
        return None
