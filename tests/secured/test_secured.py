"""Kafka is no back door: the broker of the secured profile (scripts/kafka_secured.py) requires
SASL/SCRAM from every client, and its ACLs let each of Eventline's processes do only its part.

`scripts/infra.py up secured` starts it beside the single node the rest of the suite
uses; this module deletes it again at the end.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from app.config import Settings
from app.eventstore.kafka import connection
from tests.conftest import ROOT, run_infra
from tests.faults.load import MixedLoad
from tests.faults.system import System, behind_two_apis, seed, verify
from tests.support import fresh_namespace

SECURED = "127.0.0.1:19292"  # EVENTLINE_SECURED_PORT's default (scripts/kafka_secured.py)
PROCESSES = ("api", "processor", "projector", "saga")


@pytest.fixture(scope="module")
def passwords() -> Iterator[dict[str, str]]:
    run_infra("up", "secured")
    try:
        yield json.loads((ROOT / ".local" / "kafka-secured" / "credentials.json").read_text())
    finally:
        run_infra("destroy", "secured")  # the suite owns it: no data or credentials kept


@pytest.fixture(scope="module")
async def ns(settings: Settings, passwords: dict[str, str]) -> Settings:
    """A namespace on the secured broker, its topics created as `admin` and its processes' ACLs granted."""
    created = await fresh_namespace(
        settings,
        own_database=True,
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
    """Two APIs, two processors, the projector and the saga, each as its own principal."""
    overrides = {user: as_principal(user, passwords) for user in PROCESSES}
    kinds = ("processor", "processor", "projector", "saga")
    async with behind_two_apis(ns, kinds, overrides) as (system, _, first):
        await seed(system)
        yield system, first


async def test_the_write_path_and_a_crashed_processor_on_the_secured_broker(
    secured_system: tuple[System, httpx.AsyncClient],
) -> None:
    """The mixed load with paid messages through both APIs, a processor SIGKILLed twice while it
    runs; then every invariant of the fault suite, over the log and every read model."""
    system, first = secured_system
    load = MixedLoad(first, list(system.accounts), list(system.conversations), fallbacks=[system.client])
    running = asyncio.create_task(load.run())
    try:
        for _ in range(2):
            await asyncio.sleep(3.0)
            system.kill_and_restart("processor", 0)
        await asyncio.sleep(3.0)
    finally:
        load.stopping.set()
        await running
    await verify(system, "secured: sigkill processor", load, 2)
