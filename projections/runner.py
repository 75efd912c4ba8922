"""The projector runtime: consume → batch → one database transaction (rows + checkpoints).

One runner per projection. Live runners share the projection's partitions
through a consumer group (`<ns>.projector.<name>`), but Kafka's committed
offsets are never used: on assignment a runner seeks to the checkpoints
stored in PostgreSQL, and every batch moves them in the transaction that
writes its rows. A rebuild runner reads every partition itself into the
rebuild schema (see projections/rebuild.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Settings
from app.db import is_outage
from app.observability.metrics import DEPENDENCY_ERRORS, PROJECTED
from projections import checkpoints, failures
from projections.base import Message, Projection
from projections.checkpoints import CheckpointMoved, Slot

log = logging.getLogger(__name__)

Moves = dict[Slot, tuple[int, int]]


def lock_key(name: str) -> int:
    """A stable 64-bit advisory lock key for a projection name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def is_transient(error: BaseException) -> bool:
    """Database unreachable or restarting: wait and retry, the event is not to blame."""
    if "InvalidCachedStatement" in type(getattr(error, "orig", None)).__name__:
        return True  # a rebuild swapped the tables under a cached plan; the retry re-prepares it
    return is_outage(error)


@dataclass
class RunnerOptions:
    checkpoint_name: str
    schema: str | None = None  # None: the live tables; else the rebuild schema
    group: bool = True  # share partitions through a consumer group (live) or read them all (rebuild)
    failure_mode: Literal["skip", "halt"] = "skip"
    retries: int = 3
    batch: int = 5000


class ProjectionRunner(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, settings: Settings, engine: AsyncEngine, projection: Projection,
                 options: RunnerOptions | None = None) -> None:
        self.settings, self.engine, self.projection = settings, engine, projection
        self.options = options or RunnerOptions(
            checkpoint_name=projection.name, failure_mode=settings.projection_failure_mode,
            retries=settings.projection_retries)
        self.topics = {settings.topic(short): short for short in projection.topics}
        self.positions: dict[Slot, int] = {}
        self.lock = asyncio.Lock()
        self.halted = False
        self.failure: BaseException | None = None
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed",
            enable_auto_commit=False, auto_offset_reset="earliest",
            group_id=f"{settings.namespace}.projector.{projection.name}" if self.options.group else None,
            # A fetch returns once a megabyte is waiting or the linger is over: under load a batch
            # (one database transaction) gathers many transactions' worth of events instead of one.
            max_partition_fetch_bytes=4 * 1024 * 1024, fetch_min_bytes=1024 * 1024,
            fetch_max_wait_ms=max(1, settings.projection_linger_ms),
        )

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        async with self.engine.connect() as connection:
            self.halted = await failures.is_halted(connection, self.options.checkpoint_name)
        await self.consumer.start()
        if self.options.group:
            self.consumer.subscribe(list(self.topics), listener=self)
        else:
            tps = [TopicPartition(t, p) for t in self.topics for p in range(self.partitions(self.topics[t]))]
            self.consumer.assign(tps)
            await self.on_partitions_assigned(tps)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def run(self) -> None:
        """Apply batches until cancelled."""
        await self.start()
        try:
            while True:
                await self.step()
        finally:
            await self.stop()

    def partitions(self, short_topic: str) -> int:
        return self.settings.result_partitions if short_topic == "command-results" else self.settings.partitions

    # ------------------------------------------------------------ assignment

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.lock:  # let an in-flight batch finish first
            for tp in revoked:
                self.positions.pop(self.slot(tp), None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # aiokafka only logs what a rebalance listener raises; keep it, so `step` fails loudly.
        try:
            await self.assign(assigned)
        except Exception as error:
            self.failure = error
            raise

    async def assign(self, assigned: list[TopicPartition]) -> None:
        async with self.lock:
            slots = [self.slot(tp) for tp in assigned]
            stored = await self.with_database(lambda: self.load_checkpoints(slots))
            for tp in assigned:
                self.positions[self.slot(tp)] = stored[self.slot(tp)]
                self.consumer.seek(tp, stored[self.slot(tp)])

    async def load_checkpoints(self, slots: list[Slot]) -> dict[Slot, int]:
        async with self.engine.begin() as connection:
            await checkpoints.ensure(connection, self.options.checkpoint_name, slots)
            return await checkpoints.load(connection, self.options.checkpoint_name)

    def slot(self, tp: TopicPartition) -> Slot:
        return self.topics[tp.topic], tp.partition

    # ------------------------------------------------------------ the loop

    async def step(self) -> int:
        """Fetch one batch and apply it; returns the number of messages applied."""
        if self.failure is not None:
            raise self.failure
        if self.halted:
            await self.wait_while_halted()
        try:
            batch = await self.consumer.getmany(timeout_ms=500, max_records=self.options.batch)
        except KafkaError as error:
            log.warning("%s: fetching failed (%r); retrying", self.projection.name, error)
            await asyncio.sleep(1)
            return 0
        async with self.lock:
            messages, moves = await self.collect(batch)
            if not moves:
                return 0
            await self.commit(messages, moves)
            return len(messages)

    async def collect(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
                      ) -> tuple[list[Message], Moves]:
        messages: list[Message] = []
        moves: Moves = {}
        for tp, records in batch.items():
            slot = self.slot(tp)
            expected = self.positions.get(slot)
            if expected is None:
                continue  # revoked meanwhile
            decode = self.projection.topics[slot[0]]
            fresh = [r for r in records if r.offset >= expected]
            messages += [Message(slot[0], tp.partition, r.offset, decode(r.value or b"")) for r in fresh]
            if fresh:
                moves[slot] = (expected, fresh[-1].offset + 1)
        # Partitions with nothing new may still have moved past transaction markers:
        # record that too, so a caught-up projection shows no lag.
        for tp in self.consumer.assignment():
            slot = self.slot(tp)
            if slot in self.positions and slot not in moves:
                position = await self.consumer.position(tp)
                if position > self.positions[slot]:
                    moves[slot] = (self.positions[slot], position)
        return messages, moves

    async def commit(self, messages: list[Message], moves: Moves) -> None:
        attempt = 0
        while True:
            try:
                await self.write(messages, moves)
                return
            except CheckpointMoved as moved:
                log.warning("%s: %s; reloading checkpoints", self.projection.name, moved)
                await self.reseek()
                return
            except Exception as error:
                if is_transient(error):
                    DEPENDENCY_ERRORS.labels("postgres").inc()
                    log.warning("%s: database unavailable (%r); retrying", self.projection.name, error)
                    await asyncio.sleep(1)
                    continue
                attempt += 1
                if attempt <= self.options.retries:
                    log.warning("%s: batch failed (%r), attempt %d", self.projection.name, error, attempt)
                    await asyncio.sleep(0.2 * 2 ** (attempt - 1))
                    continue
                await self.isolate(messages, moves)
                return

    async def write(self, messages: Sequence[Message], moves: Moves) -> None:
        async with self.engine.begin() as raw:
            await self.hold_lock(raw)
            connection = await self.connection(raw)
            await checkpoints.advance(connection, self.options.checkpoint_name, moves)
            if messages:
                await self.projection.apply(connection, messages)
            await checkpoints.notify(connection, self.settings.namespace, self.options.checkpoint_name)
        for slot, (_, new) in moves.items():
            self.positions[slot] = new
        if messages:
            PROJECTED.labels(self.options.checkpoint_name).inc(len(messages))
            log.debug("%s: applied %d messages", self.options.checkpoint_name, len(messages))

    async def hold_lock(self, connection: AsyncConnection) -> None:
        """Shared per projection: a rebuild's swap takes it exclusively, so no batch is in flight then."""
        await connection.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"),
                                 {"key": lock_key(self.options.checkpoint_name)})

    async def connection(self, raw: AsyncConnection) -> AsyncConnection:
        if self.options.schema is None:
            return raw
        return await raw.execution_options(schema_translate_map={None: self.options.schema})

    # ------------------------------------------------------------ poison events

    async def isolate(self, messages: list[Message], moves: Moves) -> None:
        """The batch keeps failing: apply it one message at a time to find the poison."""
        for message in messages:
            slot = (message.topic, message.partition)
            single = {slot: (self.positions[slot], message.offset + 1)}
            try:
                await self.write([message], single)
            except CheckpointMoved:
                await self.reseek()
                return
            except Exception as error:
                if is_transient(error):
                    raise
                if not await self.give_up_on(message, single, error):
                    return
        rest = {slot: (self.positions[slot], new) for slot, (_, new) in moves.items()
                if new > self.positions[slot]}
        if rest:
            await self.write([], rest)

    async def give_up_on(self, message: Message, move: Moves, error: BaseException) -> bool:
        """Record the failure; skip past the message, or halt. Returns whether to go on."""
        name = self.options.checkpoint_name
        log.error("%s: giving up on %s[%d]@%d: %r", name, message.topic, message.partition, message.offset, error)
        async with self.engine.begin() as connection:
            await self.hold_lock(connection)
            await failures.record(connection, name, message, error, self.options.retries + 1)
            if self.options.failure_mode == "skip":
                await checkpoints.advance(connection, name, move)
            else:
                await failures.halt(connection, name, f"{type(error).__name__} at "
                                    f"{message.topic}[{message.partition}]@{message.offset}")
        if self.options.failure_mode == "skip":
            for slot, (_, new) in move.items():
                self.positions[slot] = new
            return True
        self.halted = True
        await self.reseek()
        return False

    async def wait_while_halted(self) -> None:
        while True:
            async with self.engine.connect() as connection:
                if not await failures.is_halted(connection, self.options.checkpoint_name):
                    break
            await asyncio.sleep(1)
        log.info("%s: resumed", self.options.checkpoint_name)
        self.halted = False
        async with self.lock:
            await self.reseek()

    async def reseek(self) -> None:
        """Back to the stored checkpoints of the partitions we hold."""
        stored = await self.with_database(lambda: self.load_checkpoints(list(self.positions)))
        for tp in self.consumer.assignment():
            slot = self.slot(tp)
            if slot in self.positions:
                self.positions[slot] = stored[slot]
                self.consumer.seek(tp, stored[slot])

    async def with_database(self, work: Any) -> Any:
        while True:
            try:
                return await work()
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning("%s: database unavailable (%r); retrying", self.projection.name, error)
                await asyncio.sleep(1)
