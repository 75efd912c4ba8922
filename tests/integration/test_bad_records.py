"""One unreadable record in any topic stops nothing: every consumer parks it and goes on.

Any producer can write to a topic; the record here is the one from the report,
`{"not":"an event"` (not even JSON), written into every topic the system reads.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from app.config import Settings
from app.eventstore.command_bus import CommandBus, new_producer
from app.eventstore.envelope import CommandEnvelope, CommandResult, utc_now
from app.eventstore.partitioner import partition_for
from app.observability.metrics import REGISTRY
from projections.projector import run_projector
from tests.support import Process, api_client, fresh_namespace, wait_for_log
from tests.waiting import eventually

JUNK = b'{"not":"an event"'


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings, own_database=True, processor_session_timeout_ms=6000)


@pytest.fixture
def processes(ns: Settings) -> Iterator[dict[str, Process]]:
    started = {kind: Process(ns, kind).start() for kind in ("processor", "saga")}
    yield started
    for process in started.values():
        process.stop()


@pytest.fixture
async def client(ns: Settings, processes: dict[str, Process]) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"projector": run_projector}) as http:
        yield http


async def write_junk(ns: Settings, topic: str, partition: int, key: bytes | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=ns.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(ns.topic(topic), JUNK, key=key, partition=partition)
    finally:
        await producer.stop()


async def funded_account(client: httpx.AsyncClient, amount: int) -> tuple[str, str]:
    opened = await client.post("/accounts", json={"owner": "Junk", "currency": "EUR"}, timeout=60)
    assert opened.status_code == 201, opened.text
    account_id = opened.json()["aggregate_id"]
    if not amount:
        return account_id, opened.json()["position"]
    funded = await client.post(f"/accounts/{account_id}/deposits", json={"amount": amount})
    assert funded.status_code == 200, funded.text
    return account_id, funded.json()["position"]


async def test_junk_in_every_topic_stops_no_consumer(
    ns: Settings, client: httpx.AsyncClient, processes: dict[str, Process]
) -> None:
    ada, ada_token = await funded_account(client, 100)
    bob, bob_token = await funded_account(client, 0)
    partition = partition_for(ada, ns.partitions)
    for topic in ("events", "commands", "notifications", "aggregates"):
        await write_junk(ns, topic, partition, key=ada.encode())
    for result_partition in range(ns.result_partitions):
        await write_junk(ns, "command-results", result_partition)

    # The processor skipped the junk command and the API's listener the junk results: commands still answer.
    deposit = await client.post(f"/accounts/{ada}/deposits", json={"amount": 1})
    assert deposit.status_code == 200, deposit.text
    # The saga read past the junk event: a paid message after it is charged and delivered.
    started = await client.post(
        "/conversations", json={"participants": [ada, bob]}, headers={"X-Consistent-With": f"{ada_token},{bob_token}"}
    )
    assert started.status_code == 201, started.text
    conversation = started.json()["conversation_id"]
    await eventually(lambda: _status(client, f"/conversations/{conversation}/messages"), 200)
    sent = await client.post(f"/conversations/{conversation}/messages", json={"sender": ada, "body": "still here"})
    assert sent.status_code == 202, sent.text
    message = sent.json()["message_id"]
    await eventually(lambda: _field(client, f"/messages/{message}", "status"), "delivered", timeout=60)

    # Parked where an operator sees it, and nothing stopped.
    await wait_for_log(processes["saga"], r"saga: skipping an unreadable record at \S+\.events")
    await wait_for_log(processes["processor"], r"processor: skipping an unreadable record at \S+\.commands")
    assert all(p.popen is not None and p.popen.poll() is None for p in processes.values())

    async def parked() -> bool:  # the projections park the junk event in their failures table
        return len((await client.get("/projections/failures")).json()) > 0

    assert await eventually(parked, True, timeout=30)


async def test_a_takeover_reads_past_junk_on_the_changelog(
    ns: Settings, client: httpx.AsyncClient, processes: dict[str, Process]
) -> None:
    ada, _ = await funded_account(client, 100)
    await write_junk(ns, "aggregates", partition_for(ada, ns.partitions), key=b"junk")
    processes["processor"].kill()
    processes["processor"] = Process(ns, "processor").start()
    await wait_for_log(processes["processor"], re_escape_owning(ns.partitions))

    withdrawal = await client.post(f"/accounts/{ada}/withdrawals", json={"amount": 30})

    assert withdrawal.status_code == 200, withdrawal.text
    assert withdrawal.json()["version"] == 3  # opened, funded, withdrawn: the state was restored
    await wait_for_log(processes["processor"], r"processor-restore: skipping an unreadable record")


def re_escape_owning(partitions: int) -> str:
    return r"owning partitions \[" + ", ".join(str(p) for p in range(partitions)) + r"\]"


async def _status(client: httpx.AsyncClient, path: str) -> int:
    return (await client.get(path)).status_code


async def _field(client: httpx.AsyncClient, path: str, name: str) -> object:
    response = await client.get(path)
    return response.json().get(name) if response.status_code == 200 else None


def results_skipped_as_unreadable(ns: Settings) -> float:
    labels = {"consumer": "command-results", "topic": ns.topic("command-results")}
    return REGISTRY.get_sample_value("eventline_bad_records_total", labels) or 0.0


async def test_an_api_process_decodes_only_the_results_it_waits_for(ns: Settings) -> None:
    """Every API process reads every command result; one meant for another process is passed by its
    key, unread. Junk under another process's command id is therefore never even seen as junk,
    while junk under a command this process waits for is (and the real result still arrives)."""
    producer = new_producer(ns)
    await producer.start()
    bus = CommandBus(ns.model_copy(update={"command_timeout_s": 60.0}), producer)  # a slow machine's margin
    await bus.start()
    try:
        command_id = str(uuid.uuid4())
        command = CommandEnvelope(
            command_id, "Deposit", "Account", str(uuid.uuid4()), {"amount": 1}, utc_now(), command_id, command_id
        )
        waiting = asyncio.create_task(bus.send(command, wait=True))  # no processor runs: nothing answers it

        async def registered() -> bool:
            return command_id in bus.waiters

        await eventually(registered, True)
        before = results_skipped_as_unreadable(ns)
        result = CommandResult(command_id, command.aggregate_id, "succeeded", 1)
        for key, value in (
            (str(uuid.uuid4()), JUNK),  # another process's command: passed by unread
            (command_id, JUNK),  # this process's: read, and skipped as unreadable
            (command_id, result.encode()),
        ):
            await producer.send_and_wait(ns.topic("command-results"), value, key=key.encode(), partition=0)
        assert await waiting == result
        assert results_skipped_as_unreadable(ns) == before + 1
    finally:
        await bus.stop()
        await producer.stop()
