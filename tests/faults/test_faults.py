"""Faults under a steady mixed load: kill, pause and restart every moving part, then check everything.

Each test runs the load while injecting one kind of fault for several rounds,
waits until the system has settled, and checks the invariants over every
event, every read model and a fresh rebuild (tests/faults/invariants.py).
The system, the load and the verdict are in tests/faults/system.py; figures land in
artifacts/reliability.json for docs/reliability.md.
`EVENTLINE_SOAK_ROUNDS` raises the rounds (and half as many dependency restarts) for a longer soak.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from app.config import Settings
from tests.faults.load import MixedLoad
from tests.faults.system import System, behind_two_apis, pause_past_its_session, seed, under_load, verify
from tests.support import ApiProcess, api_client, fresh_namespace
from tests.waiting import eventually

JUNK = b'{"not":"an event"'  # not even JSON, as any foreign or buggy producer could write
ROUNDS = int(os.environ.get("EVENTLINE_SOAK_ROUNDS", "5"))
RESTARTS = max(2, ROUNDS // 2)  # a dependency restart takes longer than a kill: fewer of them


@pytest.fixture(scope="module")
async def system(settings: Settings) -> AsyncIterator[System]:
    # Two shards, so each of the two processors owns one: the rounds crash and pause a writer with a partner.
    ns = await fresh_namespace(
        settings,
        own_database=True,
        processor_session_timeout_ms=6000,
        command_timeout_s=1.5,
        consistency_timeout_s=15,
        processor_shards=2,
    )
    async with api_client(ns) as client:
        system = System(ns, client)
        for kind in ("processor", "processor", "projector", "saga"):
            system.start(kind)
        try:
            await seed(system)
            yield system
        finally:
            system.stop_all()


@pytest.mark.parametrize("kind", ["processor", "projector", "saga"])
async def test_sigkill_under_load_loses_and_doubles_nothing(system: System, kind: str) -> None:
    async def faults() -> None:
        for round_ in range(ROUNDS):
            await asyncio.sleep(2.0)
            system.kill_and_restart(kind, index=round_ % len(system.processes[kind]))
        await asyncio.sleep(2.0)

    load = await under_load(system, faults)
    assert load.statuses()[200] > 20, load.statuses()
    await verify(system, f"sigkill {kind}", load, ROUNDS)


async def test_a_paused_processor_is_fenced_and_the_load_goes_on(system: System) -> None:
    """SIGSTOP a processor mid-load past its session, then SIGCONT it: a zombie.

    Its partitions move to the survivor meanwhile. A zombie woken in the middle of a batch writes
    it before it hears of the rebalance, and Kafka must refuse it (its transactional ids have a
    newer epoch now): it says so. One that happened to be idle at the pause hears of the
    rebalance first and steps down without writing, which proves nothing about fencing. So each
    round sends a burst of deposits to the victim's partitions just before the pause, and rounds
    go on (two at least, six at most) until a zombie's write was refused. Nothing a zombie
    decided may reach the log (the invariants after the rounds).
    """
    refused, rounds = 0, 0

    async def faults() -> None:
        nonlocal refused, rounds
        while rounds < 2 or (refused == 0 and rounds < 6):
            victim = system.processes["processor"][rounds % 2]
            survivor = system.processes["processor"][1 - rounds % 2]
            rounds += 1
            await asyncio.sleep(2.0)
            refused += await pause_past_its_session(system, victim, survivor)
        await asyncio.sleep(4.0)

    load = await under_load(system, faults)
    assert refused >= 1, f"in {rounds} rounds no zombie tried to write: fencing was never exercised"
    await verify(system, "sigstop processor", load, rounds, zombies_refused=refused)


async def test_junk_records_in_every_topic_under_load_stop_nothing(system: System) -> None:
    """A foreign producer writes `{"not":"an event"` into every topic while clients work.

    One partition of each topic: every consumer meets it, and the projector's retries of each junk
    event (then its rebuild's) stay few enough for a slow machine.
    """
    producer = AIOKafkaProducer(bootstrap_servers=system.ns.kafka_bootstrap)
    await producer.start()

    async def faults() -> None:
        await asyncio.sleep(2.0)
        for topic in ("commands", "events", "aggregates", "notifications", "command-results"):
            await producer.send_and_wait(system.ns.topic(topic), JUNK, key=b"junk", partition=0)
        await asyncio.sleep(2.0)

    try:
        load = await under_load(system, faults)
    finally:
        await producer.stop()
    await verify(system, "junk records", load, 1)


@pytest.mark.parametrize(
    ("service", "stop"), [("kafka", "down"), ("kafka", "kill"), ("postgres", "down"), ("postgres", "kill")]
)
async def test_a_restarted_dependency_means_fast_503s_then_recovery(
    system: System, service: str, stop: str, infra: Callable[..., None]
) -> None:
    """`down` is a clean shutdown; `kill` a crash (SIGKILL), after which the server recovers from its disk."""
    # A command gives up on Kafka after the send timeout. The answer is timed by the client, in the
    # API's own process, on two cores shared with the broker's JVM starting up again, four other
    # Eventline processes and the load: that costs up to a few seconds of scheduling more (5.5 s
    # seen once). The bound says "never a hang", far below a client's patience.
    budget = system.ns.kafka_send_timeout_s + 3.5
    # The crash is the harder fault: it gets the full rounds, the clean shutdown half of them.
    rounds = RESTARTS if stop == "kill" else max(1, RESTARTS // 2)

    async def faults() -> None:
        for _ in range(rounds):
            await asyncio.sleep(2.0)
            await asyncio.to_thread(infra, stop, service)
            await asyncio.sleep(3.0)
            await asyncio.to_thread(infra, "up", service)
        await asyncio.sleep(5.0)

    load = await under_load(system, faults)
    outage = [a for a in load.answers if a.status == 503]
    assert outage, "the outage was not noticed"
    assert max(a.seconds for a in outage) < budget

    async def deposit() -> bool:
        answer = await system.client.post(f"/accounts/{system.accounts[0]}/deposits", json={"amount": 1})
        return answer.status_code in (200, 202)

    await eventually(deposit, True, timeout=60)  # recovered by itself, nothing restarted
    name = f"restart {service}" if stop == "down" else f"crash {service} (SIGKILL)"
    await verify(system, name, load, rounds, outage_answers=len(outage))


@pytest.fixture(scope="module")
async def api_system(settings: Settings) -> AsyncIterator[tuple[System, list[ApiProcess], httpx.AsyncClient]]:
    ns = await fresh_namespace(
        settings, own_database=True, processor_session_timeout_ms=6000, command_timeout_s=1.5, consistency_timeout_s=15
    )
    async with behind_two_apis(ns, ("processor", "projector", "saga")) as (system, apis, first):
        await seed(system)
        yield system, apis, first


async def test_a_killed_api_process_loses_nothing_while_clients_retry_through_another(
    api_system: tuple[System, list[ApiProcess], httpx.AsyncClient],
) -> None:
    """SIGKILL the API the clients use, with requests in flight; they resend through the second one."""
    system, apis, first = api_system
    load = MixedLoad(first, list(system.accounts), list(system.conversations), fallbacks=[system.client])
    running = asyncio.create_task(load.run())
    try:
        for _ in range(ROUNDS):
            await load_progressed(load, by=10)
            apis[0].kill()
            await load_progressed(load, by=10)  # through the second API meanwhile
            await apis[0].start()
    finally:
        load.stopping.set()
        await running
    dropped = load.statuses()[0]
    assert dropped > 0, "no request was in flight when the API died"
    await verify(system, "sigkill api", load, ROUNDS, dropped_connections=dropped)


async def load_progressed(load: MixedLoad, by: int, timeout: float = 60) -> None:
    wanted = sum(op.decided for op in load.operations) + by

    async def enough() -> bool:
        return sum(op.decided for op in load.operations) >= wanted

    await eventually(enough, True, timeout=timeout)
