"""Processors as real processes: killed, paused past their session, restarted.

A steady load of deposits runs through the API while processors fail; then
every acknowledged command must have its events exactly once, with gapless
versions per account.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiokafka.errors import ProducerFenced
from aiokafka.structs import ConsumerRecord

from app.config import Settings
from app.eventstore.envelope import CommandEnvelope, EventEnvelope, utc_now
from app.eventstore.partition_state import PartitionState
from app.eventstore.processor import fence_shard, stop_quietly
from app.eventstore.shard_writer import ABORT_TIMEOUT_S, ShardWriter, TransactionStuck
from app.eventstore.shards import Shards
from tests.support import (
    Process,
    api_client,
    assert_versions_gapless,
    fresh_namespace,
    kafka_pid,
    paused,
    read_events,
    wait_for_log,
)
from tests.waiting import eventually

ACCOUNTS = 12


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    # The broker's minimum session timeout: a dead processor is noticed in about 6 s.
    # Two shards: two processors share the partitions, so one can crash or stall while the other works.
    return await fresh_namespace(settings, processor_session_timeout_ms=6000, command_timeout_s=2.0, processor_shards=2)


@pytest.fixture
def processors(ns: Settings) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns) as http:
        yield http


@dataclass
class Load:
    """Deposits of 1 to a few accounts, from several concurrent clients, until stopped."""

    client: httpx.AsyncClient
    accounts: list[str]
    acknowledged: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, clients: int = 6) -> None:
        await asyncio.gather(*(self.client_loop(i) for i in range(clients)))

    async def client_loop(self, index: int) -> None:
        n = index
        while not self.stopping.is_set():
            account_id = self.accounts[n % len(self.accounts)]
            n += 1
            response = await self.client.post(f"/accounts/{account_id}/deposits", json={"amount": 1})
            self.statuses[response.status_code] += 1
            if response.status_code in (200, 202):
                self.acknowledged.add(response.json()["command_id"])
            await asyncio.sleep(0.01)

    async def progressed(self, by: int = 20, timeout: float = 60) -> None:
        """Wait until `by` more commands were decided (200) than now: the write path is moving."""
        wanted = self.statuses[200] + by

        async def enough() -> bool:
            return self.statuses[200] >= wanted

        await eventually(enough, True, timeout=timeout)


async def open_accounts(client: httpx.AsyncClient, count: int) -> list[str]:
    accounts = []
    for _ in range(count):
        response = await client.post("/accounts", json={"owner": "Load", "currency": "EUR"})
        assert response.status_code == 201, response.text
        accounts.append(response.json()["aggregate_id"])
    return accounts


async def wait_until_owned(process: Process, partitions: int, after: int = 0, timeout: float = 60) -> None:
    await wait_for_log(process, re.escape(f"owning partitions {list(range(partitions))}"), after, timeout)


async def started_processor(ns: Settings, processors: list[Process]) -> Process:
    """A processor that owns every partition: started is not ready, so this waits for the takeover."""
    process = Process(ns, "processor").start()
    processors.append(process)
    await wait_until_owned(process, ns.partitions)
    return process


async def check_exactly_once(ns: Settings, acknowledged: set[str], timeout: float = 60) -> list[EventEnvelope]:
    """Every acknowledged command's event appears once; versions have no gap or repeat."""
    deadline = time.monotonic() + timeout
    while True:
        events = await read_events(ns)
        per_command = Counter(e.command_id for e in events)
        missing = acknowledged - set(per_command)
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert not missing, f"{len(missing)} acknowledged commands have no event"
    duplicated = {c: n for c, n in per_command.items() if n > 1}
    assert not duplicated, f"commands applied twice: {duplicated}"
    assert_versions_gapless(events)
    return events


async def two_processors_under_load(
    ns: Settings, processors: list[Process], client: httpx.AsyncClient
) -> tuple[Process, Process, Load, asyncio.Task[None]]:
    """The first owns every partition, then a second joins while deposits keep coming."""
    first = await started_processor(ns, processors)
    second = Process(ns, "processor").start()
    processors.append(second)
    load = Load(client, await open_accounts(client, ACCOUNTS))
    running = asyncio.create_task(load.run())
    await wait_for_log(second, r"owning partitions \[\d")  # the second joined and took some over
    await load.progressed()  # both own partitions under load
    return first, second, load, running


async def test_a_killed_processor_loses_nothing_and_the_survivor_takes_over(
    ns: Settings, processors: list[Process], client: httpx.AsyncClient
) -> None:
    first, second, load, running = await two_processors_under_load(ns, processors, client)
    first.kill()
    await wait_until_owned(second, ns.partitions)
    await load.progressed()
    load.stopping.set()
    await running
    assert load.statuses[200] > 50, load.statuses
    assert set(load.statuses) <= {200, 202}, load.statuses
    await check_exactly_once(ns, load.acknowledged)


async def test_a_paused_processor_is_fenced_and_writes_nothing_more(
    ns: Settings, processors: list[Process], client: httpx.AsyncClient
) -> None:
    zombie, survivor, load, running = await two_processors_under_load(ns, processors, client)
    zombie.pause()
    await wait_until_owned(survivor, ns.partitions)  # the group gave the zombie's partitions away
    paused_log = len(zombie.log())
    zombie.resume()
    # The zombie wakes up mid-work, is fenced or revoked, then rejoins the group and owns some again.
    await wait_for_log(zombie, r"owning partitions \[\d", after=paused_log)
    await load.progressed()
    load.stopping.set()
    await running
    assert load.statuses[200] > 50, load.statuses
    await check_exactly_once(ns, load.acknowledged)


async def test_a_restart_restores_every_aggregate(
    ns: Settings, processors: list[Process], client: httpx.AsyncClient
) -> None:
    await started_processor(ns, processors)
    # The first command after the takeover is decided within the command timeout (2 s): a 201, not a 202.
    accounts = await open_accounts(client, 5)
    for n, account_id in enumerate(accounts):
        for _ in range(n + 1):
            await client.post(f"/accounts/{account_id}/deposits", json={"amount": 10})
    key = {"Idempotency-Key": f"restart-{uuid.uuid4()}"}
    before = await client.post(f"/accounts/{accounts[0]}/withdrawals", json={"amount": 3}, headers=key)
    assert processors[0].stop() == 0
    await started_processor(ns, processors)
    # Same key after the restart: answered from the restored memory, nothing applied twice.
    after = await client.post(f"/accounts/{accounts[0]}/withdrawals", json={"amount": 3}, headers=key)
    assert after.status_code == 200 and after.json() == before.json()
    for n, account_id in enumerate(accounts):
        balance = 10 * (n + 1) - (3 if n == 0 else 0)
        too_much = await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": balance + 1})
        assert too_much.status_code == 422 and too_much.json()["balance"] == balance
        exact = await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": balance})
        assert exact.status_code == 200
        assert exact.json()["version"] == 1 + (n + 1) + (1 if n == 0 else 0) + 1
    events = await read_events(ns)
    assert sum(1 for e in events if e.command_id == before.json()["command_id"]) == 1
    assert_versions_gapless(events)


def open_account_record(
    ns: Settings, partition: int, owner: str, offset: int = 0
) -> tuple[str, ConsumerRecord[bytes, bytes]]:
    """An OpenAccount command as the processor would fetch it from partition `partition`."""
    command = CommandEnvelope(
        command_id=str(uuid.uuid4()),
        type="OpenAccount",
        aggregate_type="Account",
        aggregate_id=str(uuid.uuid4()),
        data={"owner": owner, "currency": "EUR"},
        issued_at=utc_now(),
        correlation_id="c",
        causation_id="c",
    )
    return command.command_id, ConsumerRecord(
        ns.topic("commands"), partition, offset, 0, 0, None, command.encode(), None, 0, 0, []
    )


async def writer_of(ns: Settings, partition: int) -> ShardWriter:
    """A writer of the shard holding `partition`, with every partition of it empty, as a new owner has it."""
    shards = Shards(ns)
    shard = shards.of(partition)
    states = [PartitionState(ns, p, {}, 0) for p in shards.partitions_of(shard)]
    return ShardWriter(ns, shard, await fence_shard(ns, shard), states)


async def test_a_fenced_writer_cannot_commit_its_open_transaction(ns: Settings) -> None:
    """The zombie case made deterministic: a new owner fences the shard while the old one is
    mid-transaction, a transaction that holds commands of two of the shard's partitions."""
    zombie = await writer_of(ns, 0)
    first, second = sorted(zombie.partitions)[:2]
    decided = [open_account_record(ns, p, "Zombie") for p in (first, second)]
    batches = [zombie.partitions[record.partition].decide([record]) for _, record in decided]
    assert None not in batches
    new_owner = None
    with pytest.raises(ProducerFenced):
        async with zombie.producer.transaction():
            await zombie.write([b for b in batches if b is not None])
            new_owner = await fence_shard(ns, zombie.shard)  # takes the shard over before the commit
    assert new_owner is not None
    await new_owner.stop()
    await stop_quietly(zombie.producer)
    commands = {command_id for command_id, _ in decided}
    assert [e for e in await read_events(ns) if e.command_id in commands] == []


async def test_a_fenced_writer_says_fenced_on_every_batch_after(ns: Settings) -> None:
    """Once fenced, the producer is finished, and aiokafka's next refusals do not say why (a
    send's IllegalOperation, `begin_transaction`'s AssertionError). The writer names the
    cause, so the processor steps down from the partition instead of stopping altogether."""
    partition = 2
    zombie = await writer_of(ns, partition)
    new_owner = await fence_shard(ns, zombie.shard)
    try:
        for first in (0, 10, 20):
            records = [open_account_record(ns, partition, "Zombie", offset=first + n)[1] for n in range(10)]
            with pytest.raises(ProducerFenced):
                await zombie.apply(records)
    finally:
        await new_owner.stop()
        await stop_quietly(zombie.producer)
    state = zombie.partitions[partition]
    assert state.next_offset == 0 and state.aggregates == {}


async def test_a_transaction_the_broker_stops_answering_is_given_up(ns: Settings) -> None:
    """aiokafka would wait without end; the writer gives up at its transaction timeout instead."""
    quick = ns.model_copy(update={"processor_transaction_timeout_ms": 1000})
    partition = 1
    writer = await writer_of(quick, partition)
    command_id, record = open_account_record(quick, partition, "Stuck")
    try:
        with paused(kafka_pid()):
            started = time.monotonic()
            with pytest.raises(TransactionStuck):
                await writer.apply([record])
            assert time.monotonic() - started < 1 + ABORT_TIMEOUT_S + 2
    finally:
        await stop_quietly(writer.producer)
    state = writer.partitions[partition]
    assert state.next_offset == 0 and state.aggregates == {}  # memory did not move
    assert [e for e in await read_events(ns) if e.command_id == command_id] == []
