"""The projector runtime: consume → batch → one database transaction (rows + checkpoints).

A runner applies one or more projections (its members) from one consumer:
each batch is fetched and decoded once, and every member's rows and
checkpoints are written in one transaction. Each member keeps checkpoints of
its own, so members may stand at different offsets (after a rebuild, say):
the consumer reads from the lowest, and each member skips what it has applied.

Live runners share the partitions through a consumer group, but Kafka's
committed offsets are never used: on assignment a runner seeks to the
checkpoints stored in PostgreSQL, and every batch moves them in the
transaction that writes its rows. A rebuild runner reads every partition
itself into the rebuild schema (see projections/rebuild.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from opentelemetry.context import Context
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Settings
from app.db import is_outage
from app.eventstore.envelope import EventEnvelope
from app.eventstore.kafka import connection
from app.observability import tracing
from app.observability.logs import error_text
from app.observability.metrics import DEPENDENCY_ERRORS, PROJECTED
from app.observability.tracing_attributes import trace_attributes
from app.privacy.key_store import KeyStore
from app.privacy.runtime import start_key_store
from projections import checkpoints, failures
from projections.base import Decode, Message, Projection, Undecodable, UndecodableRecord, decode_record
from projections.checkpoints import CheckpointMoved, Slot
from projections.personal import erase_failures, forgotten_subjects, opened_batch

log = logging.getLogger(__name__)

Moves = dict[Slot, tuple[int, int]]

# How often a runner asks whether a halted member was resumed (`eventline failures retry`).
HALT_CHECK_S = 1.0


def lock_key(name: str) -> int:
    """A stable 64-bit advisory lock key for a projection name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def is_transient(error: BaseException) -> bool:
    """Database unreachable or restarting: wait and retry, the event is not to blame."""
    if "InvalidCachedStatement" in type(getattr(error, "orig", None)).__name__:
        return True  # a rebuild swapped the tables under a cached plan; the retry re-prepares it
    return is_outage(error)


@dataclass
class Member:
    """One projection in a runner: its checkpoints, where it stands in each partition, whether it halted."""

    projection: Projection
    checkpoint_name: str
    positions: dict[Slot, int] = field(default_factory=dict)
    halted: bool = False
    applied: int = 0  # messages applied since the runner started


@dataclass
class Work:
    """What one batch means for one member: the messages it has not applied, and its checkpoint moves."""

    member: Member
    messages: list[Message]
    moves: Moves
    # Records among them that are not events at all (a foreign producer's junk): recorded as failures
    # in the transaction that applies the rest. No retry or fix of a handler could ever apply them.
    junk: list[Message] = field(default_factory=list)


@dataclass
class RunnerOptions:
    schema: str | None = None  # None: the live tables; else the rebuild schema
    group: bool = True  # share partitions through a consumer group (live) or read them all (rebuild)
    failure_mode: Literal["skip", "halt"] = "skip"
    retries: int = 3
    batch: int = 5000
    slots: frozenset[Slot] | None = None  # without a group: read only these partitions (None: all)
    bulk: bool = False  # a rebuild's replay into fresh tables: Projection.bulk_apply where there is one
    until: datetime | None = None  # apply only events that occurred at or before this (a read model as of then)


class ProjectionRunner(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self, settings: Settings, engine: AsyncEngine, members: Sequence[Member], options: RunnerOptions | None = None
    ) -> None:
        self.settings, self.engine, self.members = settings, engine, list(members)
        # With tracing on: each event's trace context in the batch being written, by (slot, offset).
        self.trace_parents: dict[tuple[Slot, int], Context] = {}
        self.options = options or RunnerOptions(
            failure_mode=settings.projection_failure_mode, retries=settings.projection_retries
        )
        self.topics = {settings.topic(short): short for m in self.members for short in m.projection.topics}
        self.name = "+".join(m.checkpoint_name for m in self.members)
        self.lock = asyncio.Lock()
        self.failure: BaseException | None = None
        self.halt_checked = 0.0
        self.keys: KeyStore | None = None  # opens the events' personal fields (started with the runner)
        self.consumer = AIOKafkaConsumer(
            **connection(settings),
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # The group is named after its members: processes running other sets of projections
            # must not share partitions with this one.
            group_id=f"{settings.namespace}.projector.{self.name}" if self.options.group else None,
            # A fetch returns once a megabyte is waiting or the linger is over: under load a batch
            # (one database transaction) gathers many transactions' worth of events instead of one.
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_min_bytes=1024 * 1024,
            fetch_max_wait_ms=max(1, settings.projection_linger_ms),
        )

    @classmethod
    def live(cls, settings: Settings, engine: AsyncEngine, projections: Sequence[Projection]) -> ProjectionRunner:
        return cls(settings, engine, [Member(p, p.name) for p in projections])

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        async with self.engine.connect() as connection:
            for member in self.members:
                member.halted = await failures.is_halted(connection, member.checkpoint_name)
        self.keys = await start_key_store(self.settings, None)
        await self.consumer.start()
        if self.options.group:
            self.consumer.subscribe(list(self.topics), listener=self)
        else:
            slots = {slot for m in self.members for slot in checkpoints.slots_of(self.settings, m.projection)}
            tps = [
                TopicPartition(self.settings.topic(topic), p)
                for topic, p in sorted(slots)
                if self.options.slots is None or (topic, p) in self.options.slots
            ]
            self.consumer.assign(tps)
            await self.on_partitions_assigned(tps)

    async def stop(self) -> None:
        await self.consumer.stop()
        if self.keys is not None:
            await self.keys.stop()

    async def run(self) -> None:
        """Apply batches until cancelled."""
        await self.start()
        try:
            while True:
                await self.step()
        finally:
            await self.stop()

    @property
    def active(self) -> list[Member]:
        return [m for m in self.members if not m.halted]

    @property
    def halted(self) -> bool:
        return not self.active

    # ------------------------------------------------------------ assignment

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.lock:  # let an in-flight batch finish first
            for member in self.members:
                for tp in revoked:
                    member.positions.pop(self.slot(tp), None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # aiokafka only logs what a rebalance listener raises; keep it, so `step` fails loudly.
        try:
            async with self.lock:
                await self.load_positions([self.slot(tp) for tp in assigned])
        except Exception as error:
            self.failure = error
            raise

    async def load_positions(self, slots: list[Slot]) -> None:
        """Read the members' checkpoints of these partitions and seek to the lowest of the active ones."""
        stored = await self.with_database(lambda: self.load_checkpoints(slots))
        for member in self.members:
            for slot in slots:
                if slot[0] in member.projection.topics:
                    member.positions[slot] = stored[member.checkpoint_name][slot]
        self.seek_to_lowest(slots)

    async def load_checkpoints(self, slots: list[Slot]) -> dict[str, dict[Slot, int]]:
        found = {}
        async with self.engine.begin() as connection:
            for member in self.members:
                mine = [slot for slot in slots if slot[0] in member.projection.topics]
                await checkpoints.ensure(connection, member.checkpoint_name, mine)
                found[member.checkpoint_name] = await checkpoints.load(connection, member.checkpoint_name)
        return found

    def seek_to_lowest(self, slots: list[Slot]) -> None:
        """Read each partition from where its furthest-behind active member stands."""
        by_slot = {self.slot(tp): tp for tp in self.consumer.assignment()}
        for slot in slots:
            standing = [m.positions[slot] for m in self.active if slot in m.positions]
            if slot in by_slot and standing:
                self.consumer.seek(by_slot[slot], min(standing))

    async def reseek(self) -> None:
        """Back to the stored checkpoints of the partitions we hold."""
        await self.load_positions([self.slot(tp) for tp in self.consumer.assignment()])

    def slot(self, tp: TopicPartition) -> Slot:
        return self.topics[tp.topic], tp.partition

    # ------------------------------------------------------------ the loop

    async def step(self) -> int:
        """Fetch one batch and apply it; returns the number of messages applied (all members)."""
        if self.failure is not None:
            raise self.failure
        await self.resume_halted()
        if self.halted:
            await asyncio.sleep(HALT_CHECK_S)
            return 0
        try:
            batch = await self.consumer.getmany(timeout_ms=500, max_records=self.options.batch)
        except KafkaError as error:
            log.warning("%s: fetching failed (%r); retrying", self.name, error)
            await asyncio.sleep(1)
            return 0
        async with self.lock:
            work = await self.collect(batch)
            if not work:
                return 0
            await self.commit(work)
            return sum(len(w.messages) for w in work)

    async def collect(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]) -> list[Work]:
        if tracing.enabled and self.options.schema is None:
            self.trace_parents = traced(batch, self.slot)
        # Every forget of the batch is known before any of its events is opened, whichever partition it came from.
        decoded = await opened_batch(self.decode(batch), self.keys)
        read_up_to = {self.slot(tp): await self.consumer.position(tp) for tp in self.consumer.assignment()}
        work = []
        for member in self.active:
            messages: list[Message] = []
            junk: list[Message] = []
            moves: Moves = {}
            for tp in batch:
                slot = self.slot(tp)
                expected = member.positions.get(slot)
                if expected is None:
                    continue  # not this member's topic, or revoked meanwhile
                fresh = [m for m in decoded[tp, member.projection.topics[slot[0]]] if m.offset >= expected]
                for message in fresh if self.options.until is None else [m for m in fresh if self.happened(m)]:
                    (junk if isinstance(message.value, Undecodable) else messages).append(message)
                if fresh:
                    moves[slot] = (expected, fresh[-1].offset + 1)
            # Partitions with nothing new may still have moved past transaction markers:
            # record that too, so a caught-up projection shows no lag.
            for slot, position in read_up_to.items():
                if slot in member.positions and slot not in moves and position > member.positions[slot]:
                    moves[slot] = (member.positions[slot], position)
            if moves:
                work.append(Work(member, messages, moves, junk))
        return work

    def record_spans(self, work: list[Work], started_ns: int, ended_ns: int) -> None:
        """A span per event this batch applied, in the event's own trace: the read models caught up with it."""
        parents, self.trace_parents = self.trace_parents, {}
        for item in work:
            for message in item.messages:
                parent = parents.pop(((message.topic, message.partition), message.offset), None)
                if parent is not None and isinstance(message.value, EventEnvelope):
                    event = message.value
                    tracing.record(f"project {event.type}", parent, started_ns, ended_ns, trace_attributes(event))

    def happened(self, message: Message) -> bool:
        """Whether the message's event occurred by `options.until` (anything but an event is kept)."""
        value = message.value
        if not isinstance(value, EventEnvelope) or self.options.until is None:
            return True
        return datetime.fromisoformat(value.occurred_at) <= self.options.until

    def decode(
        self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
    ) -> dict[tuple[TopicPartition, Decode], list[Message]]:
        """Each record decoded once per decoder, however many members read it."""
        decoders = {
            (tp, m.projection.topics[self.slot(tp)[0]])
            for tp in batch
            for m in self.active
            if self.slot(tp)[0] in m.projection.topics
        }
        return {
            (tp, decode): [
                Message(self.topics[tp.topic], tp.partition, r.offset, decode_record(decode, r.value))
                for r in batch[tp]
            ]
            for tp, decode in decoders
        }

    async def commit(self, work: list[Work]) -> None:
        """All members in one transaction; if that fails for a reason of its own, member by member."""
        error = await self.write_through_outages(work, self.name)
        if error is None:
            return
        if len(work) > 1:
            log.warning("%s: batch failed (%s); applying it projection by projection", self.name, error_text(error))
        for item in work:
            await self.commit_alone(item)

    async def commit_alone(self, item: Work) -> None:
        """One member's share of a batch: retried, then searched for its poison event."""
        name = item.member.checkpoint_name
        attempt = 0
        while (error := await self.write_through_outages([item], name)) is not None:
            attempt += 1
            if attempt > self.options.retries:
                await self.isolate(item)
                return
            log.warning("%s: batch failed (%s), attempt %d", name, error_text(error), attempt)
            await asyncio.sleep(0.2 * 2 ** (attempt - 1))

    async def write_through_outages(self, work: list[Work], name: str) -> Exception | None:
        """`write`, waiting out database outages. None once written, or once another runner's
        move of a checkpoint made the batch moot; else the error that failed it."""
        while True:
            try:
                await self.write(work)
                return None
            except CheckpointMoved as moved:
                log.warning("%s: %s; reloading checkpoints", name, moved)
                await self.reseek()
                return None
            except Exception as error:
                if not is_transient(error):
                    return error
                DEPENDENCY_ERRORS.labels("postgres").inc()
                log.warning("%s: database unavailable (%r); retrying", name, error)
                await asyncio.sleep(1)

    async def write(self, work: list[Work]) -> None:
        names = [item.member.checkpoint_name for item in work]
        started_ns = time.time_ns()
        async with self.engine.begin() as raw:
            await self.hold_locks(raw, names)
            connection = await self.connection(raw)
            await checkpoints.advance_all(connection, {item.member.checkpoint_name: item.moves for item in work})
            for item in work:
                if item.messages:
                    await self.apply(item.member.projection, connection, item.messages)
                for message in item.junk:
                    await record_junk(raw, item.member.checkpoint_name, message)
            if self.options.schema is None and (forgotten := forgotten_in_work(work)):
                await erase_failures(connection, forgotten)
            await checkpoints.notify(connection, self.settings.namespace, names)
        if self.trace_parents:
            self.record_spans(work, started_ns, time.time_ns())
        for item in work:
            for slot, (_, new) in item.moves.items():
                item.member.positions[slot] = new
            item.member.applied += len(item.messages)
            if item.messages:
                PROJECTED.labels(item.member.checkpoint_name).inc(len(item.messages))
                log.debug("%s: applied %d messages", item.member.checkpoint_name, len(item.messages))

    async def hold_locks(self, connection: AsyncConnection, names: list[str]) -> None:
        """Shared per projection: a rebuild's swap takes it exclusively, so no batch is in flight then."""
        await checkpoints.lock_shared(connection, sorted(lock_key(name) for name in names))

    async def apply(self, projection: Projection, connection: AsyncConnection, messages: Sequence[Message]) -> None:
        """Into a rebuild's fresh tables, an insert-only projection's bulk path (COPY) when it has one."""
        if self.options.schema is not None and self.options.bulk and projection.bulk_apply is not None:
            await projection.bulk_apply(connection, self.options.schema, messages)
        else:
            await projection.apply(connection, messages)

    async def connection(self, raw: AsyncConnection) -> AsyncConnection:
        if self.options.schema is None:
            return raw
        return await raw.execution_options(schema_translate_map={None: self.options.schema})

    # ------------------------------------------------------------ poison events

    async def isolate(self, item: Work) -> None:
        """A member's batch keeps failing: apply it one message at a time to find the poison."""
        member = item.member
        for message in sorted(item.messages + item.junk, key=lambda m: (m.topic, m.partition, m.offset)):
            slot = (message.topic, message.partition)
            moves = {slot: (member.positions[slot], message.offset + 1)}
            is_junk = isinstance(message.value, Undecodable)
            single = Work(member, [], moves, [message]) if is_junk else Work(member, [message], moves)
            try:
                await self.write([single])
            except CheckpointMoved:
                await self.reseek()
                return
            except Exception as error:
                if is_transient(error) or not single.messages:
                    raise
                if not await self.give_up_on(single, error):
                    return
        rest = {
            slot: (member.positions[slot], new) for slot, (_, new) in item.moves.items() if new > member.positions[slot]
        }
        if rest:
            await self.write([Work(member, [], rest)])

    async def give_up_on(self, single: Work, error: BaseException) -> bool:
        """Record the failure; skip past the message, or halt the member. Returns whether to go on."""
        member, [message] = single.member, single.messages
        name = member.checkpoint_name
        # A record that is not an event at all (a foreign producer's junk) is skipped in either mode:
        # no fix of a handler could ever apply it, so halting there would stop the projection for good
        # (and make every rebuild fail). It is recorded like any failure. Most junk never gets here
        # (Work.junk); a record a projection cannot read although it decoded may.
        skip = self.options.failure_mode == "skip" or isinstance(error, UndecodableRecord)
        log.error(
            "%s: giving up on %s[%d]@%d: %s", name, message.topic, message.partition, message.offset, error_text(error)
        )
        async with self.engine.begin() as connection:
            await self.hold_locks(connection, [name])
            await failures.record(connection, name, message, error, self.options.retries + 1)
            if skip:
                await checkpoints.advance(connection, name, single.moves)
            else:
                await failures.halt(
                    connection, name, f"{type(error).__name__} at {message.topic}[{message.partition}]@{message.offset}"
                )
        if skip:
            for slot, (_, new) in single.moves.items():
                member.positions[slot] = new
            return True
        member.halted = True
        await self.reseek()
        return False

    async def resume_halted(self) -> None:
        """A halted member goes on once resumed; the consumer goes back to where it stopped."""
        halted = [m for m in self.members if m.halted]
        if not halted or time.monotonic() - self.halt_checked < HALT_CHECK_S:
            return
        self.halt_checked = time.monotonic()
        try:
            async with self.engine.connect() as connection:
                resumed = [m for m in halted if not await failures.is_halted(connection, m.checkpoint_name)]
        except Exception as error:
            if not is_transient(error):
                raise
            return  # asked again in a second
        if resumed:
            for member in resumed:
                log.info("%s: resumed", member.checkpoint_name)
                member.halted = False
            async with self.lock:
                await self.reseek()

    async def with_database(self, work: Any) -> Any:
        while True:
            try:
                return await work()
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning("%s: database unavailable (%r); retrying", self.name, error)
                await asyncio.sleep(1)


def forgotten_in_work(work: list[Work]) -> list[str]:
    return sorted({subject for item in work for subject in forgotten_subjects(item.messages)})


def traced(
    batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]], slot: Callable[[TopicPartition], Slot]
) -> dict[tuple[Slot, int], Context]:
    """The trace context each record of the batch carries, by (slot, offset)."""
    found = {}
    for tp, records in batch.items():
        for record in records:
            if (parent := tracing.context_of(record.headers)) is not None:
                found[(slot(tp), record.offset)] = parent
    return found


async def record_junk(connection: AsyncConnection, name: str, message: Message) -> None:
    """A record that is not an event, in the failures table: skipped at once, in either failure mode."""
    error = UndecodableRecord(f"{message.topic}[{message.partition}]@{message.offset}: {message.value.error}")
    log.error("%s: skipping %s[%d]@%d: it cannot be decoded", name, message.topic, message.partition, message.offset)
    await failures.record(connection, name, message, error, attempts=1)
