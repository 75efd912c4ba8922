"""The API side of the write path: produce a command, then await its result.

Each API process reads every partition of `<ns>.command-results` from the
moment it starts (no consumer group: every process sees every result) and
wakes up whoever waits for that command id; a result nobody here waits for is
skipped by its key, undecoded. Results are small and short-lived, so reading
all of them is cheaper than routing each one to its sender (which would need
each process to own reply partitions, and their hand-over on every restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from app.config import Settings
from app.eventstore.bad_records import UNREADABLE, skip_bad_record
from app.eventstore.envelope import CommandEnvelope, CommandResult
from app.eventstore.kafka import connection, producer_is_dead
from app.eventstore.partitioner import partition_for
from app.observability import tracing
from app.privacy.key_store import KeyStore
from app.privacy.personal_data import seal_command

log = logging.getLogger(__name__)


class CommandNotAccepted(RuntimeError):
    """Kafka did not acknowledge the command in time; it may or may not have been stored."""


def new_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(**connection(settings), acks="all", enable_idempotence=True)


class CommandBus:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer, keys: KeyStore | None = None) -> None:
        """`keys`: personal fields are sealed with them before the command reaches any topic."""
        self.settings = settings
        self.producer = producer
        self.keys = keys
        self.waiters: defaultdict[str, list[asyncio.Future[CommandResult]]] = defaultdict(list)
        self.consumer = AIOKafkaConsumer(
            **connection(settings),
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=100,
        )
        self.listener: asyncio.Task[None] | None = None
        self.replacing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        topic = self.settings.topic("command-results")
        await self.consumer.start()
        tps = [TopicPartition(topic, p) for p in range(self.settings.result_partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end now: a result written after this point must not be skipped
            await self.consumer.position(tp)
        self.listener = asyncio.create_task(self.listen(), name="command-results-listener")

    async def stop(self) -> None:
        for task in (self.listener, self.replacing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.consumer.stop()

    async def send(self, command: CommandEnvelope, wait: bool) -> CommandResult | None:
        """Store the command; with `wait`, return its result, or None when it takes too long.

        Raises SubjectForgotten for a command carrying personal data of a forgotten subject."""
        if self.keys is not None:
            command = await seal_command(command, self.keys)
        waiter: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        if wait:
            self.waiters[command.command_id].append(waiter)
        try:
            await self.produce(command)
            if not wait:
                return None
            async with asyncio.timeout(self.settings.command_timeout_s):
                return await waiter
        except TimeoutError:
            return None
        finally:
            self.forget(command.command_id, waiter)

    async def produce(self, command: CommandEnvelope) -> None:
        partition = partition_for(command.aggregate_id, self.settings.partitions)
        try:
            async with asyncio.timeout(self.settings.kafka_send_timeout_s):
                await self.producer.send_and_wait(
                    self.settings.topic("commands"),
                    command.encode(),
                    key=command.aggregate_id.encode(),
                    partition=partition,
                    headers=tracing.headers_of() or None,  # the request's trace, when tracing is on
                )
        except (TimeoutError, KafkaError) as error:
            self.replace_producer_if_dead()
            raise CommandNotAccepted(str(error) or type(error).__name__) from error

    def replace_producer_if_dead(self) -> None:
        """A producer whose sender has stopped is replaced, so the API recovers by itself.

        In the background: the request that noticed answers 503 now, not after the swap.
        """
        if not producer_is_dead(self.producer) or (self.replacing is not None and not self.replacing.done()):
            return
        self.replacing = asyncio.create_task(self.replace_producer(), name="replace-kafka-producer")

    async def replace_producer(self) -> None:
        log.error("the Kafka producer stopped; starting a new one")
        old, self.producer = self.producer, new_producer(self.settings)
        with contextlib.suppress(Exception):
            await old.stop()
        with contextlib.suppress(KafkaError):  # still down: the next failure tries again
            await self.producer.start()

    def forget(self, command_id: str, waiter: asyncio.Future[CommandResult]) -> None:
        waiting = self.waiters.get(command_id)
        if waiting and waiter in waiting:
            waiting.remove(waiter)
        if not waiting:
            self.waiters.pop(command_id, None)

    async def listen(self) -> None:
        while True:
            try:
                batch = await self.consumer.getmany(timeout_ms=1000, max_records=5000)
            except KafkaError as error:
                log.warning("command results: %r; retrying", error)
                await asyncio.sleep(1)
                continue
            for records in batch.values():
                for record in records:
                    self.deliver(record)

    def deliver(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        # Keyed by command id: another API process's result (nobody here waits for it) is not decoded,
        # so a process reads the others' results but decodes only its own.
        if record.key is not None and record.key.decode("utf-8", "replace") not in self.waiters:
            return
        try:
            result = CommandResult.decode(record.value)
        except UNREADABLE as error:
            skip_bad_record("command-results", record, error)
            return
        for waiter in self.waiters.pop(result.command_id, []):
            if not waiter.done():
                waiter.set_result(result)
