"""How soon a processor decides: after it starts, and after it takes partitions over.

One command per partition waits on `<ns>.commands` (produced straight there, as
the API would); the time counts from the processor's start (a new process:
interpreter, imports, joining the group, restoring, fencing each partition) to
the first and to the last of those commands' results on `<ns>.command-results`.
Then a second processor joins, the first is stopped (SIGTERM: it leaves the
group), and one more command per partition is timed from that stop: a takeover.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.config import Settings
from app.domain import accounts
from app.eventstore.envelope import CommandResult, new_command
from app.eventstore.partitioner import partition_for
from bench.processes import VENV_BIN, Service, eventline_environment
from bench.setup import bench_settings, delete_namespace_topics, drop_database

DEADLINE_S = 120.0


def one_id_per_partition(partitions: int) -> list[str]:
    ids: dict[int, str] = {}
    while len(ids) < partitions:
        candidate = str(uuid.uuid4())
        ids.setdefault(partition_for(candidate, partitions), candidate)
    return list(ids.values())


async def send_openings(settings: Settings, account_ids: list[str]) -> set[str]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        commands = [
            new_command(accounts.OpenAccount(owner="Startup", currency="EUR"), a, principal="bench")
            for a in account_ids
        ]
        for command in commands:
            await producer.send_and_wait(
                settings.topic("commands"),
                command.encode(),
                key=command.aggregate_id.encode(),
                partition=partition_for(command.aggregate_id, settings.partitions),
            )
        return {command.command_id for command in commands}
    finally:
        await producer.stop()


async def results_consumer(settings: Settings) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed")
    await consumer.start()
    tps = [TopicPartition(settings.topic("command-results"), p) for p in range(settings.result_partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:  # resolve the end now: results from here on are the ones timed
        await consumer.position(tp)
    return consumer


async def decided(consumer: AIOKafkaConsumer, waiting: set[str], since: float) -> tuple[float, float]:
    """(seconds to the first, seconds to the last) result of `waiting`, counted from `since`."""
    first, pending = None, set(waiting)
    async with asyncio.timeout(DEADLINE_S):
        while pending:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    command_id = CommandResult.decode(record.value or b"{}").command_id
                    if command_id in pending:
                        pending.discard(command_id)
                        first = first if first is not None else time.monotonic() - since
    return (first or 0.0), time.monotonic() - since


async def measure_startup(say: Any) -> dict[str, Any]:
    settings = await bench_settings()
    env = eventline_environment(settings)
    binary = str(VENV_BIN / "eventline")
    first, second = (Service(f"startup-processor-{n}", [binary, "processor"], env) for n in (1, 2))
    consumer = await results_consumer(settings)
    try:
        waiting = await send_openings(settings, one_id_per_partition(settings.partitions))
        started = time.monotonic()
        first.start()
        to_first, to_all = await decided(consumer, waiting, started)
        say(f"  started: first decision {to_first:.2f}s, every partition {to_all:.2f}s after the process started")
        second.start()
        await asyncio.sleep(5.0)  # let it join; the first keeps every partition until the group rebalances
        stopped = time.monotonic()
        await asyncio.to_thread(first.stop)
        waiting = await send_openings(settings, one_id_per_partition(settings.partitions))
        taken_first, taken_all = await decided(consumer, waiting, stopped)
        say(f"  takeover: first decision {taken_first:.2f}s, every partition {taken_all:.2f}s after SIGTERM")
        return {
            "start_to_first_decision_s": to_first,
            "start_to_every_partition_s": to_all,
            "takeover_to_first_decision_s": taken_first,
            "takeover_to_every_partition_s": taken_all,
        }
    finally:
        await consumer.stop()
        for service in (second, first):
            await asyncio.to_thread(service.stop)
        with contextlib.suppress(Exception):
            await delete_namespace_topics(settings)
        await drop_database(settings)
