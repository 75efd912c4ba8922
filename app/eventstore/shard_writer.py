"""A shard's writer: decide a batch of commands and write all of it in one Kafka transaction.

The batch may hold commands of every partition of the shard (shards.py); each
partition's events, states, notifications and results go to that partition,
and one transaction carries them all with every partition's consumed offsets.
The partitions' memory moves only after the commit (partition_state.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from itertools import groupby
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord, RecordMetadata
from opentelemetry.trace import Span

from app.config import Settings
from app.domain.forgetting import FORGOTTEN_EVENT
from app.eventstore.envelope import CommandResult, Notification, utc_now
from app.eventstore.idempotency import now_ms, record_key
from app.eventstore.kafka import sender_failure
from app.eventstore.partition_state import Batch, PartitionState, decode_command
from app.observability import tracing
from app.observability.metrics import BATCHES, EVENTS_APPENDED
from app.observability.tracing_attributes import trace_attributes
from app.privacy.key_store import TOPIC as KEYS_TOPIC
from app.privacy.personal_data import WriterKeys

log = logging.getLogger(__name__)

ABORT_TIMEOUT_S = 5.0

Acks = list[tuple[str, "asyncio.Future[RecordMetadata]"]]  # each event's command id and ack, in log order


class TransactionStuck(KafkaError):  # type: ignore[misc]
    """A transaction did not finish within its timeout: abandon it and take the shard over."""

    def __init__(self, shard: int) -> None:
        super().__init__(f"shard {shard}: a transaction did not finish within its timeout")


class EventOffsetMispredicted(KafkaError):  # type: ignore[misc]
    """Something else took offsets in our event partition: a foreign producer's record, or a second
    commit marker written by a transaction coordinator that took over. The batch is aborted; once
    the abort went through (`aborted`), it is written again with offsets learned from the acks."""

    def __init__(self, partition: int, predicted: int, written: int) -> None:
        super().__init__(f"partition {partition}: an event expected at offset {predicted} landed at {written}")
        self.aborted = False


class ShardWriter:
    """Owns one shard: its transactional producer and the state of each of its partitions."""

    def __init__(
        self,
        settings: Settings,
        shard: int,
        producer: AIOKafkaProducer,
        partitions: list[PartitionState],
        personal: WriterKeys | None = None,
    ) -> None:
        """`personal`: commands' personal fields are opened to decide and events' sealed to store."""
        self.settings = settings
        self.shard = shard
        self.producer = producer
        self.partitions = {state.partition: state for state in partitions}
        self.personal = personal
        self.spans: dict[str, Span] = {}  # command id -> its decision's span, while its batch is written

    @property
    def sources(self) -> list[TopicPartition]:
        return [state.source for state in self.partitions.values()]

    async def apply(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Decide every command of the batch and write the outcome in one transaction."""
        if not tracing.enabled:
            return await self.decide_and_write(records)
        # Each command's decision is a span of the trace its record carries, until the commit.
        self.spans = decision_spans(records)
        try:
            await self.decide_and_write(records)
        finally:
            for span in self.spans.values():
                span.end()
            self.spans = {}

    async def decide_and_write(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        # Decoded once (a bad record is reported once): the keys' preparation and the decisions read them.
        commands = {
            (r.partition, r.offset): decode_command(r)
            for r in records
            if r.partition in self.partitions and r.offset >= self.partitions[r.partition].next_offset
        }
        if self.personal is not None:
            await self.personal.prepare(c for c in commands.values() if c is not None)
        by_partition = groupby(sorted(records, key=lambda r: r.partition), key=lambda r: r.partition)
        owned = [(p, list(rs)) for p, rs in by_partition if p in self.partitions]
        decided = [self.partitions[p].decide(rs, self.personal, commands) for p, rs in owned]
        batches = [batch for batch in decided if batch is not None]
        if not batches:
            return
        try:
            written = await self.in_transaction(batches)
        except EventOffsetMispredicted as mispredicted:
            if not mispredicted.aborted:
                raise  # the producer is in doubt: take the shard over
            # Nothing of the batch is in memory or in the log (aborted): write the same batch
            # again with the same producer, learning the offsets from the acks. A takeover (new
            # producer, restore) would cost seconds for what one more round trip settles.
            log.warning("%s; writing the batch again with offsets from the acks", mispredicted)
            BATCHES.labels("rewritten").inc()
            for batch in batches:
                self.partitions[batch.partition].next_event_offset = None
            written = await self.in_transaction(batches)
        # Only now, with the transaction committed, does memory move forward.
        remembered_at, next_event_offsets = written
        for batch in batches:
            self.partitions[batch.partition].advance(batch, remembered_at, next_event_offsets[batch.partition])
            for decision in batch.decisions:
                for event in decision.events:
                    EVENTS_APPENDED.labels(event.aggregate_type).inc()
        if self.personal is not None:
            for subject_id in forgotten_in(batches):
                self.personal.keys.forget_locally(subject_id)
        BATCHES.labels("committed").inc()
        log.debug("shard %d: committed %d commands of %d partitions", self.shard, len(records), len(batches))

    async def in_transaction(self, batches: list[Batch]) -> tuple[int, dict[int, int | None]]:
        """`write` in one transaction that cannot hang the shard.

        aiokafka retries some transactional requests without end (while a restarted
        broker reloads, say). Past the transaction timeout the broker aborts the
        transaction anyway, so the writer gives up, and the shard is taken over
        afresh. The abort is bounded too: when it cannot finish, the next owner's
        fencing finishes it.
        """
        try:
            await self.producer.begin_transaction()
            async with asyncio.timeout(self.settings.processor_transaction_timeout_ms / 1000):
                written = await self.write(batches)
                await self.producer.commit_transaction()
            return written
        except BaseException as failure:
            aborted = await self.abort_quietly()
            if isinstance(failure, EventOffsetMispredicted):
                failure.aborted = aborted
            if isinstance(failure, TimeoutError):
                raise TransactionStuck(self.shard) from failure
            if (cause := sender_failure(self.producer)) is not None and cause is not failure:
                raise named_after(cause, self.shard) from failure
            raise

    async def abort_quietly(self) -> bool:
        """Abort the open transaction; True when the abort went through."""
        try:
            async with asyncio.timeout(ABORT_TIMEOUT_S):
                await self.producer.abort_transaction()
        except Exception as error:  # fenced, already failed, or stuck: the shard is taken over next
            log.debug("shard %d: abort: %r", self.shard, error)
            return False
        return True

    async def write(self, batches: list[Batch]) -> tuple[int, dict[int, int | None]]:
        """Produce the batches inside the open transaction.

        Returns when the remembered commands were written and where each partition's next
        event will land. Results carry the offsets of their events. Once this writer knows
        where a partition's log ends, it predicts them, so the whole batch goes out at once
        and the transaction needs four round trips instead of six; the acks are checked
        before the commit.
        """
        published_at = utc_now()
        acks = {batch.partition: await self.append_events(batch, published_at) for batch in batches}
        offsets: dict[int, list[int]] = {}
        for partition, sent in acks.items():
            known = self.partitions[partition].next_event_offset
            if known is None:
                # The first events since taking the partition over: learn the offsets from the acks.
                offsets[partition] = [(await ack).offset for _, ack in sent]
            else:
                offsets[partition] = list(range(known, known + len(sent)))
        for batch in batches:
            positions = {
                command_id: {str(batch.partition): offset}
                for (command_id, _), offset in zip(acks[batch.partition], offsets[batch.partition], strict=True)
            }
            await self.send_results(batch, positions)
        remembered_at = now_ms()
        for batch in batches:
            await self.send_changelog(batch, remembered_at)
        await self.destroy_keys(batches, remembered_at)
        await self.commit_offsets_checking(batches, acks, offsets)
        # A committed transaction leaves one marker after its last event in each partition.
        return remembered_at, {
            p: (found[-1] + 2 if found else self.partitions[p].next_event_offset) for p, found in offsets.items()
        }

    async def commit_offsets_checking(
        self, batches: list[Batch], acks: dict[int, Acks], offsets: dict[int, list[int]]
    ) -> None:
        """Send the consumed offsets, and check every event landed where its result says."""
        # The offsets go alongside the produce; the acks are awaited first, because a produce that
        # fails (a broker restart) fails its ack, while the offsets' answer may never come then.
        consumed = {
            self.partitions[batch.partition].source: (
                batch.next_offset,
                commit_metadata(self.partitions[batch.partition]),
            )
            for batch in batches
        }
        offsets_sent = asyncio.ensure_future(
            self.producer.send_offsets_to_transaction(consumed, self.settings.processor_group)
        )
        offsets_sent.add_done_callback(retrieve_error)
        try:
            for partition, sent in acks.items():
                for (_, ack), predicted in zip(sent, offsets[partition], strict=True):
                    if (written := (await ack).offset) != predicted:
                        raise EventOffsetMispredicted(partition, predicted, written)
            await offsets_sent
        finally:
            offsets_sent.cancel()  # no-op once done

    async def append_events(self, batch: Batch, published_at: str) -> Acks:
        """Send a partition's events and their notifications; return each event's command and ack."""
        acks = []
        for decision in batch.decisions:
            for event in decision.events:
                key = event.aggregate_id.encode()
                headers = event.headers()
                if (span := self.spans.get(decision.command.command_id)) is not None:
                    headers += tracing.headers_of(span)  # the saga and the projector join the trace
                ack = await self.send("events", batch.partition, key, event.encode(), headers=headers)
                acks.append((decision.command.command_id, ack))
                await self.send("notifications", batch.partition, key, Notification.of(event, published_at).encode())
        return acks

    async def send_results(self, batch: Batch, positions: dict[str, dict[str, int]]) -> None:
        """Send each command's result, with the position of its events."""
        final: dict[str, CommandResult] = {}
        partition = self.results_partition(batch.partition)
        for decision in batch.decisions:
            command_id = decision.command.command_id
            if decision.result.replayed and command_id in final:
                result = replace(final[command_id], replayed=True)  # repeated within this batch
            else:
                result = replace(decision.result, position=positions.get(command_id, decision.result.position))
                if decision.to_remember:
                    final[command_id] = result
                    batch.remembered[command_id] = decision.remembered(result)
            await self.send("command-results", partition, command_id.encode(), result.encode())

    async def send_changelog(self, batch: Batch, remembered_at: int) -> None:
        """Send each touched aggregate, each command to remember, each expired one's tombstone.

        The remembered commands carry `remembered_at`: their retention counts from it.
        """
        p = batch.partition
        for aggregate in batch.touched.values():
            await self.send("aggregates", p, aggregate.aggregate_id.encode(), aggregate.to_record().encode())
        # Tombstones before the new entries: a key that expired and came back in this batch stays.
        for command_id in batch.expired:
            if command_id not in batch.remembered:
                await self.send("aggregates", p, record_key(command_id), None)
        for command_id, entry in batch.remembered.items():
            await self.send("aggregates", p, record_key(command_id), entry.encode(), timestamp_ms=remembered_at)

    async def destroy_keys(self, batches: list[Batch], at_ms: int) -> None:
        """For each subject forgotten in this batch, the tombstones of their data keys and the
        `forgotten` record, in the transaction that stores the fact: no reader ever sees the
        SubjectForgotten event while the keys still open the subject's values, or the other way round."""
        if self.personal is None:
            return  # sealing is off (development only): nothing was sealed, so there is no key
        keys = self.personal.keys
        for subject_id in forgotten_in(batches):
            for key, value in keys.forget_records(subject_id, at_ms):
                await self.send(KEYS_TOPIC, keys.partition_of(subject_id), key, value)

    async def send(
        self, topic: str, partition: int, key: bytes, value: bytes | None, **options: Any
    ) -> asyncio.Future[RecordMetadata]:
        """Send into `partition` of this namespace's `topic`; an aborted batch's unawaited acks are
        not an error to log."""
        ack: asyncio.Future[RecordMetadata] = await self.producer.send(
            self.settings.topic(topic), value, key=key, partition=partition, **options
        )
        ack.add_done_callback(retrieve_error)
        return ack

    def results_partition(self, partition: int) -> int:
        """Where a partition's results go: every API process reads every result partition,
        so any will do. One led by the broker that leads this partition's events keeps a
        transaction to few brokers, so a broker that dies pauses only the partitions it led
        (see topics.co_located)."""
        fallback = partition % self.settings.result_partitions
        cluster = self.producer.client.cluster
        leader = cluster.leader_for_partition(TopicPartition(self.settings.topic("events"), partition))
        if leader is None or leader < 0:
            return fallback
        results = self.settings.topic("command-results")
        alike = [
            r
            for r in range(self.settings.result_partitions)
            if cluster.leader_for_partition(TopicPartition(results, r)) == leader
        ]
        return alike[partition % len(alike)] if alike else fallback


def commit_metadata(state: PartitionState) -> str:
    """Stored by the group coordinator with the committed offset, for operators (GET /processors):
    when this owner's latest batch of the partition was committed, and how many it has committed."""
    return json.dumps({"at": now_ms(), "batches": state.batches + 1}, separators=(",", ":"))


def decision_spans(records: list[ConsumerRecord[bytes, bytes]]) -> dict[str, Span]:
    """A span per command of the batch, in the trace its record carries (the API's request, a saga step)."""
    spans = {}
    for record in records:
        command = decode_command(record)
        if command is not None:
            parent = tracing.context_of(record.headers)
            span = tracing.start(f"decide {command.type}", parent, trace_attributes(command))
            if span is not None:
                spans[command.command_id] = span
    return spans


def forgotten_in(batches: list[Batch]) -> list[str]:
    """The subjects a batch forgets (their aggregates decided SubjectForgotten)."""
    return [
        event.aggregate_id
        for batch in batches
        for decision in batch.decisions
        for event in decision.events
        if event.type == FORGOTTEN_EVENT
    ]


class ProducerStopped(KafkaError):  # type: ignore[misc]
    """The producer's sender ended on an error other than fencing: take the shard over afresh."""

    def __init__(self, shard: int, cause: BaseException) -> None:
        super().__init__(f"shard {shard}: the producer stopped sending ({cause!r})")


def named_after(cause: BaseException, shard: int) -> KafkaError:
    """What a dead producer's failure means for the shard: fenced, or take it over again."""
    if isinstance(cause, ProducerFenced):
        return ProducerFenced()
    return ProducerStopped(shard, cause)


def retrieve_error(future: asyncio.Future[Any]) -> None:
    """An aborted batch never awaits some futures: their error is the transaction's, handled there."""
    if not future.cancelled():
        future.exception()
