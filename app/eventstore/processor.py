"""The command processor: the single writer of each partition of the event store.

Processors form one consumer group on `<ns>.commands`. Owning command
partition p makes a processor the only writer of `<ns>.events` p. Partitions
are owned a shard at a time (`shards.py`): each owned shard has its own writer
(`shard_writer.py`) and its own pump, so a shard's batches are applied one
after the other, each in one Kafka transaction across the shard's partitions,
while the shards go at their own pace. See docs/write-path.md for the failure
analysis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord

from app.config import Settings
from app.eventstore.command_bus import new_producer
from app.eventstore.kafka import connection
from app.eventstore.partition_state import PartitionState
from app.eventstore.restore import restore_partitions
from app.eventstore.shard_writer import ShardWriter
from app.eventstore.shards import Shards
from app.observability.metrics import BATCHES, DEPENDENCY_ERRORS
from app.privacy.key_store import KeyEncryptionKeyMismatch, KeyStore
from app.privacy.personal_data import WriterKeys
from app.privacy.runtime import key_encryption_keys

log = logging.getLogger(__name__)

# Errors after which a writer's producer can no longer be trusted: it was replaced
# by a newer owner of the partition (a zombie), or its epoch was bumped.
FENCING_ERRORS: tuple[type[Exception], ...] = (ProducerFenced,)


class OffsetsUnavailable(KafkaError):  # type: ignore[misc]
    retriable = True


STOP_TIMEOUT_S = 10.0

# Backpressure: stop fetching a shard whose writer is this far behind, resume below the second.
PAUSE_BACKLOG, RESUME_BACKLOG = 5_000, 500


class Pump:
    """Feeds one shard's writer: the records fetched for it, one transaction at a time."""

    def __init__(self, writer: ShardWriter) -> None:
        self.writer = writer
        self.pending: list[ConsumerRecord[bytes, bytes]] = []
        self.more = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.gather_s = writer.settings.processor_gather_ms / 1000
        self.busy_until = 0.0  # when the last transaction ended

    def offer(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        self.pending.extend(records)
        self.more.set()

    async def run(self) -> None:
        while True:
            await self.more.wait()
            if self.gather_s and time.monotonic() - self.busy_until < self.gather_s:
                # Under load (a transaction just ended): let the clients answered by it send their
                # next commands, so one transaction carries several. An idle shard starts at once.
                await asyncio.sleep(self.gather_s)
            self.more.clear()
            records, self.pending = self.pending, []
            if records:
                await self.writer.apply(records)
                self.busy_until = time.monotonic()

    async def stop(self) -> None:
        """Cancel: an in-flight transaction aborts, which is safe; the next owner redoes it."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await stop_quietly(self.writer.producer)


class Processor(ConsumerRebalanceListener):  # type: ignore[misc]
    """Consumes commands, owns whole shards of partitions, and runs one pump per owned shard."""

    def __init__(self, settings: Settings, personal: WriterKeys | None = None) -> None:
        self.settings = settings
        self.personal = personal  # how personal fields are opened and sealed, when they are
        self.shards = Shards(settings)
        self.pumps: dict[int, Pump] = {}  # by shard
        self.lock = asyncio.Lock()  # serialises rebalances and shard reopening
        self.failure: BaseException | None = None
        self.chores: set[asyncio.Task[None]] = set()
        self.consumer = AIOKafkaConsumer(
            **connection(settings),
            # Names the process in the group's description (GET /processors, the console).
            client_id=f"processor-{socket.gethostname()}-{os.getpid()}",
            group_id=settings.processor_group,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.processor_session_timeout_ms,
            # A member hears of a rebalance in its next heartbeat's answer: at a third of the session
            # (3.3 s) the survivors of a takeover waited 1.7 s for it on average, at 1 s about 0.5 s
            # (docs/write-path.md, "How soon a processor decides"). The session is at least 6 s.
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=settings.processor_max_poll_interval_ms,
            # The broker answers a JoinGroup within the rebalance timeout (aiokafka sends the session's).
            # After a crash of the broker a join went unanswered, and the processors waited out
            # aiokafka's 40 s before they asked again, deciding nothing meanwhile; the next ask
            # was answered at once (docs/reliability.md, "A join lost in a broker's restart").
            request_timeout_ms=settings.processor_session_timeout_ms + 5_000,
            fetch_max_wait_ms=100,
            partition_assignment_strategy=(self.shards.assignor(),),
        )

    async def run(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([self.settings.topic("commands")], listener=self)
        try:
            while self.failure is None:
                await self.fetch()
            raise self.failure
        finally:
            async with self.lock:
                await self.close([*self.pumps])
            await self.consumer.stop()

    async def fetch(self) -> None:
        try:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=self.settings.processor_batch)
        except KafkaError as error:
            log.warning("fetching commands failed (%r); retrying", error)
            await asyncio.sleep(1)
            return
        for tp, records in batch.items():
            pump = self.pumps.get(self.shards.of(tp.partition))
            if pump is None:
                continue  # revoked or fenced meanwhile; the new owner reads these again
            pump.offer(records)
            if len(pump.pending) >= PAUSE_BACKLOG:
                self.consumer.pause(*pump.writer.sources)
        paused = self.consumer.paused()
        for pump in self.pumps.values():
            if len(pump.pending) < RESUME_BACKLOG:
                self.consumer.resume(*(tp for tp in pump.writer.sources if tp in paused))

    def start_pump(self, writer: ShardWriter) -> None:
        pump = Pump(writer)
        pump.task = asyncio.create_task(self.pumping(pump), name=f"shard-{writer.shard}")
        self.pumps[writer.shard] = pump

    async def pumping(self, pump: Pump) -> None:
        """Run a pump; decide what a failure means for its shard."""
        shard = pump.writer.shard
        try:
            await pump.run()
        except FENCING_ERRORS:
            BATCHES.labels("fenced").inc()
            log.warning("shard %d: fenced by a newer owner; stopping it", shard)
            self.consumer.pause(*pump.writer.sources)
            self.later(self.retire(pump, reopen=False))
        except KafkaError as error:
            BATCHES.labels("aborted").inc()
            DEPENDENCY_ERRORS.labels("kafka").inc()
            log.warning("shard %d: batch aborted (%r); reloading and retrying", shard, error)
            self.later(self.retire(pump, reopen=True))
        except Exception as bug:  # not Kafka's doing: stop the processor, loudly
            log.exception("shard %d: unexpected error", shard)
            self.failure = bug

    def later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run outside the failing pump (it cannot close itself), keeping a reference until done."""
        task = asyncio.create_task(work)
        self.chores.add(task)
        task.add_done_callback(self.chores.discard)

    async def retire(self, pump: Pump, reopen: bool) -> None:
        """Drop a failed pump; after an aborted batch, take the shard over again from its commit."""
        async with self.lock:
            shard = pump.writer.shard
            if self.pumps.get(shard) is not pump:
                return  # a rebalance got there first
            await self.close([shard])
            if reopen and set(pump.writer.sources) <= self.consumer.assignment():
                await asyncio.sleep(0.5)
                await self.open([shard])

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.lock:
            await self.close(sorted({self.shards.of(tp.partition) for tp in revoked}))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self.lock:
            try:
                await self.open(self.shards.whole(tp.partition for tp in assigned))
            except Exception as bug:  # aiokafka would only log it; stop the processor instead
                self.failure = bug
                raise

    async def open(self, shards: list[int]) -> None:
        """Take shards over, retrying while Kafka is unreachable (owning p without a writer would stall p)."""
        while True:
            try:
                for writer in await self.take_over(shards):
                    self.start_pump(writer)
                log.info("owning partitions %s (shards %s)", self.owned_partitions(), sorted(self.pumps))
                return
            except KafkaError as error:
                log.warning("taking over shards %s failed (%r); retrying", shards, error)
                await asyncio.sleep(1)

    def owned_partitions(self) -> list[int]:
        return sorted(p for shard in self.pumps for p in self.shards.partitions_of(shard))

    async def take_over(self, shards: list[int]) -> list[ShardWriter]:
        """Fence, then read offsets, then restore: in that order, or a zombie's work could resurface."""
        started = await asyncio.gather(*(fence_shard(self.settings, s) for s in shards), return_exceptions=True)
        producers = [p for p in started if isinstance(p, AIOKafkaProducer)]
        try:
            if len(producers) < len(started):
                raise next(e for e in started if isinstance(e, BaseException))
            partitions = [p for s in shards for p in self.shards.partitions_of(s)]
            restored = await restore_partitions(self.settings, partitions)
            writers = []
            for shard, producer in zip(shards, producers, strict=True):
                states = []
                for partition in self.shards.partitions_of(shard):
                    tp = TopicPartition(self.settings.topic("commands"), partition)
                    memory = restored[partition]
                    next_offset = await self.committed_offset(tp, has_state=bool(memory.aggregates or memory.memory))
                    states.append(
                        PartitionState(self.settings, partition, memory.aggregates, next_offset, memory.memory)
                    )
                writers.append(ShardWriter(self.settings, shard, producer, states, self.personal))
        except BaseException:
            await asyncio.gather(*(stop_quietly(p) for p in producers))
            raise
        for writer in writers:
            for owned in writer.partitions.values():
                self.consumer.seek(owned.source, owned.next_offset)
            self.consumer.resume(*writer.sources)
        return writers

    async def committed_offset(self, tp: TopicPartition, has_state: bool) -> int:
        """Where p's commands resume. No offset with stored state means the group's offsets are
        not readable yet (a coordinator still loading them): starting from 0 then would apply
        old commands again, so that is retried instead."""
        committed = await self.consumer.committed(tp)
        if committed is None and has_state:
            raise OffsetsUnavailable(f"partition {tp.partition} has aggregate states but no committed offset")
        return committed or 0

    async def close(self, shards: list[int]) -> None:
        pumps = [self.pumps.pop(s) for s in shards if s in self.pumps]
        await asyncio.gather(*(pump.stop() for pump in pumps))


async def fence_shard(settings: Settings, shard: int) -> AIOKafkaProducer:
    """Start a shard's transactional producer: obtaining its producer id fences older owners.

    aiokafka requests the producer id inside `start()` (the sender waits for
    it before starting), and the coordinator answers only once the previous
    owner's open transaction is aborted.
    """
    producer = AIOKafkaProducer(
        **connection(settings),
        transactional_id=Shards(settings).transactional_id(shard),
        enable_idempotence=True,
        acks="all",
        linger_ms=settings.processor_linger_ms,
        transaction_timeout_ms=settings.processor_transaction_timeout_ms,
        # Back-to-back transactions: the broker answers a produce that races the previous
        # commit's markers with a retriable error (NOT_ENOUGH_REPLICAS for this protocol
        # version). Retry sooner than after the default 100 ms, but not so soon that a broker
        # outage turns into a storm of reconnects (the same backoff paces them).
        retry_backoff_ms=settings.processor_retry_backoff_ms,
    )
    await producer.start()
    return producer


async def stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        # Bounded: stop() flushes, and a stuck producer has nothing worth the wait.
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await producer.stop()
    except Exception as error:  # a fenced producer may fail to flush; it has nothing to save
        log.debug("producer stop: %r", error)


async def run_processor(settings: Settings) -> None:
    """Run one processor until cancelled."""
    keks = key_encryption_keys(settings)
    if keks is None:
        await Processor(settings).run()
        return
    # A plain producer of its own creates data keys (for a command stored before sealing was on):
    # a key is stored before the transaction that seals with it, never inside it.
    producer = new_producer(settings)
    await producer.start()
    keys = KeyStore(settings, keks, producer)
    # The key store reads its topic while the processor joins its group and restores its shards
    # (both take a while at start); no batch is decided before the keys are read and checked, and a
    # key-encryption key that cannot open them stops the processor before its first batch.
    started = asyncio.create_task(keys.start(), name="key-store-start")
    running = asyncio.create_task(Processor(settings, WriterKeys(keys, started)).run(), name="processor")
    try:
        await started
        await running
    finally:
        for task in (started, running):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, KeyEncryptionKeyMismatch):
            await running
        if started.done() and not started.cancelled() and started.exception() is None:
            await keys.stop()
        await producer.stop()
