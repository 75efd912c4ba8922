"""Kafka is no back door: the broker of the secured profile (scripts/kafka_secured.py) requires
SASL/SCRAM from every client, and its ACLs let each of Eventline's processes do only its part.

`scripts/infra.py up secured` starts it beside the single node the rest of the suite
uses; this module deletes it again at the end. The fault rounds that touch what a principal
is granted run here on one system, each followed by the fault suite's invariants: a SIGKILLed
processor, a SIGSTOPped one woken as a fenced zombie, a SIGKILLed saga and projector.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from app.config import Settings
from app.eventstore.kafka import connection
from tests.conftest import ROOT, run_infra
from tests.faults.load import MixedLoad
from tests.faults.system import System, behind_two_apis, pause_past_its_session, seed, verify
from tests.support import fresh_namespace
from tests.waiting import eventually

# Where scripts/kafka_secured.py puts the broker: this checkout's port and `.local`, as infra.py reads them.
SECURED = f"127.0.0.1:{os.environ.get('EVENTLINE_SECURED_PORT', '19292')}"
CREDENTIALS = Path(os.environ.get("EVENTLINE_LOCAL_DIR", ROOT / ".local")) / "kafka-secured" / "credentials.json"
PROCESSES = ("api", "processor", "projector", "saga")


@pytest.fixture(scope="module")
def passwords() -> Iterator[dict[str, str]]:
    run_infra("up", "secured")
    try:
        yield json.loads(CREDENTIALS.read_text())
    finally:
        run_infra("destroy", "secured")  # the suite owns it: no data or credentials kept


@pytest.fixture(scope="module")
async def ns(settings: Settings, passwords: dict[str, str]) -> Settings:
    """A namespace on the secured broker, its topics created as `admin` and its processes' ACLs granted."""
    created = await fresh_namespace(
        settings,
        own_database=True,
        processor_shards=2,  # each of the two processors owns a shard, so each can be a zombie
        kafka_bootstrap=SECURED,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="admin",
        kafka_password=passwords["admin"],
        processor_session_timeout_ms=6000,
        command_timeout_s=1.5,
        consistency_timeout_s=15,
    )
    granted = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(ROOT / "scripts" / "kafka_secured.py"), "grant", created.namespace],
        capture_output=True,
        text=True,
    )
    assert granted.returncode == 0, granted.stderr
    return created


def as_principal(user: str, passwords: dict[str, str]) -> dict[str, object]:
    return {"kafka_username": user, "kafka_password": passwords[user]}


def principal(ns: Settings, passwords: dict[str, str], user: str) -> Settings:
    return ns.model_copy(update=as_principal(user, passwords))


async def produce(settings: Settings, topic: str) -> None:
    producer = AIOKafkaProducer(**connection(settings), acks="all", request_timeout_ms=10000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"k")
    finally:
        await producer.stop()


async def test_a_client_that_does_not_authenticate_gets_nothing(ns: Settings, passwords: dict[str, str]) -> None:
    wrong = principal(ns, passwords, "api").model_copy(update={"kafka_password": "not-the-password"})
    with pytest.raises(KafkaError):  # aiokafka: authentication failed
        await produce(wrong, ns.topic("commands"))
    unauthenticated = AIOKafkaConsumer(bootstrap_servers=SECURED, request_timeout_ms=3000)
    with pytest.raises(KafkaError):  # the broker closes a connection that skips the SASL handshake
        await asyncio.wait_for(unauthenticated.start(), timeout=30)
    await unauthenticated.stop()


# Who may write where: the processor writes the event store, the API and the saga write commands.
WRITES = {
    "api": {"commands"},
    "saga": {"commands"},
    "processor": {"events", "aggregates", "command-results", "notifications"},
    "projector": set(),
}
TOPICS = ("commands", "events", "aggregates", "command-results", "notifications")


@pytest.mark.parametrize("user", PROCESSES)
async def test_a_process_writing_a_topic_it_may_not_is_refused_by_the_broker(
    ns: Settings, passwords: dict[str, str], user: str
) -> None:
    """Each principal against every topic; the processor's own writes go through its
    transactions, so its allowed topics are left to the write-path round below."""
    settings = principal(ns, passwords, user)
    for name in TOPICS:
        if name in WRITES[user]:
            if user != "processor":
                await produce(settings, ns.topic(name))
            continue
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(settings, ns.topic(name))


@pytest.fixture(scope="module")
async def secured_system(ns: Settings, passwords: dict[str, str]) -> AsyncIterator[tuple[System, httpx.AsyncClient]]:
    """Two APIs, two processors, the projector and the saga, each as its own principal.

    One system for every fault round below, in the fault suite's way: starting it costs more than
    a round, and each round's invariants hold over the whole log, the earlier rounds' included."""
    overrides = {user: as_principal(user, passwords) for user in PROCESSES}
    kinds = ("processor", "processor", "projector", "saga")
    async with behind_two_apis(ns, kinds, overrides) as (system, apis, first):
        # Listed with the others, so that their logs are searched for refusals and their exits noticed.
        system.processes["api"] = [api.process for api in apis if api.process is not None]
        await seed(system)
        yield system, first


async def under_load(
    secured_system: tuple[System, httpx.AsyncClient], faults: Callable[[MixedLoad], Awaitable[None]]
) -> MixedLoad:
    """The mixed load with paid messages through both APIs while `faults` runs."""
    system, first = secured_system
    load = MixedLoad(first, list(system.accounts), list(system.conversations), fallbacks=[system.client])
    running = asyncio.create_task(load.run())
    try:
        await faults(load)
    finally:
        load.stopping.set()
        await running
    return load


async def progressed(load: MixedLoad, by: int = 30, timeout: float = 60) -> None:
    """Until `by` more operations of the load were decided: the system is working, not just up."""
    wanted = sum(op.decided for op in load.operations) + by

    async def enough() -> bool:
        return sum(op.decided for op in load.operations) >= wanted

    await eventually(enough, True, timeout=timeout)


# How aiokafka names the broker's refusals: *AuthorizationFailed* for want of an ACL, the others
# for a credential it did not accept.
REFUSED = re.compile(r"AuthorizationFailed|AuthenticationFailed|SaslAuthentication")


def refusals(system: System) -> list[str]:
    """The log lines in which a running process (the APIs too) was refused by the broker."""
    return [
        f"{kind}[{n}]: {line}"
        for kind, processes in system.processes.items()
        for n, process in enumerate(processes)
        for line in process.log().splitlines()
        if REFUSED.search(line)
    ]


async def test_the_write_path_and_a_crashed_processor_on_the_secured_broker(
    secured_system: tuple[System, httpx.AsyncClient],
) -> None:
    """The mixed load with paid messages through both APIs, a processor SIGKILLed twice while it
    runs; then every invariant of the fault suite, over the log and every read model."""
    system, _ = secured_system

    async def faults(load: MixedLoad) -> None:
        for round_ in range(2):
            await progressed(load)
            system.kill_and_restart("processor", round_)
        await progressed(load)

    load = await under_load(secured_system, faults)
    assert not (refused := refusals(system)), refused
    await verify(system, "secured: sigkill processor", load, 2)


async def test_a_paused_processor_wakes_as_a_zombie_the_broker_fences_not_one_it_refuses(
    secured_system: tuple[System, httpx.AsyncClient],
) -> None:
    """SIGSTOP a processor past its session, then SIGCONT it, as the fault suite does.

    The survivor takes the victim's shards over, which needs its principal's grant on
    transactional ids it has not used before; the zombie, woken mid-batch, must be refused as
    fenced (a newer epoch), not for want of an ACL. A burst of deposits to the victim's
    partitions just before the pause makes a mid-batch wake likely; rounds go on (four at most)
    until a zombie's write was refused. Then every invariant: nothing a zombie decided got in.
    """
    system, _ = secured_system
    fenced, rounds = 0, 0

    async def faults(load: MixedLoad) -> None:
        nonlocal fenced, rounds
        while fenced == 0 and rounds < 4:
            processors = system.processes["processor"]
            victim, survivor = processors[rounds % 2], processors[1 - rounds % 2]
            rounds += 1
            await progressed(load)
            fenced += await pause_past_its_session(system, victim, survivor)
        await progressed(load)

    load = await under_load(secured_system, faults)
    assert fenced == 1, f"in {rounds} rounds no zombie tried to write: fencing was never exercised"
    assert not (refused := refusals(system)), refused
    await verify(system, "secured: sigstop processor", load, rounds, zombies_refused=fenced)


async def test_a_killed_saga_and_projector_resume_in_the_groups_their_principals_may_read(
    secured_system: tuple[System, httpx.AsyncClient],
) -> None:
    """SIGKILL the saga and the projector by turns under the load, twice each: each restarted one
    joins its consumer group again and resumes from its committed position (the saga's offsets in
    `<ns>.saga.payment`, the projector's checkpoints beside its rows), which its principal must be
    granted. Neither writes Kafka in a transaction: the saga's producer is only idempotent, and the
    projector writes PostgreSQL. Then every invariant: every paid message settled once, every read
    model equal to the log and to a rebuild, which needs both to have caught up after the last kill."""
    system, _ = secured_system

    async def faults(load: MixedLoad) -> None:
        for kind in ("saga", "projector", "saga", "projector"):
            await progressed(load)
            system.kill_and_restart(kind)
        await progressed(load)

    load = await under_load(secured_system, faults)
    assert not (refused := refusals(system)), refused
    await verify(system, "secured: sigkill saga and projector", load, 4)
