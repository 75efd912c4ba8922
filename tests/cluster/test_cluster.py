"""The same project on a three-broker Kafka cluster (replication 3, min.insync.replicas 2), and a broker crash.

`scripts/infra.py up cluster` starts the cluster beside the single node the rest
of the suite uses; this module stops it again at the end.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from app.config import Settings
from app.eventstore.processor import run_processor
from app.eventstore.topics import verify_topics
from tests.conftest import run_infra
from tests.support import api_client, assert_versions_gapless, fresh_namespace, read_events
from tests.waiting import eventually

CLUSTER_PORT = int(os.environ.get("EVENTLINE_CLUSTER_PORT", "19192"))
BOOTSTRAP = ",".join(f"127.0.0.1:{CLUSTER_PORT + 2 * n}" for n in range(3))


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    run_infra("up", "cluster")
    try:
        yield BOOTSTRAP
    finally:
        run_infra("down", "cluster")


@pytest.fixture(scope="module")
async def ns(settings: Settings, cluster: str) -> Settings:
    created = await fresh_namespace(
        settings, kafka_bootstrap=cluster, replication_factor=3, min_insync_replicas=2, command_timeout_s=3.0
    )

    async def every_broker_knows_the_topics() -> bool:
        # Created is not yet known everywhere: each broker learns new topics from the metadata log.
        for broker in cluster.split(","):
            admin = AIOKafkaAdminClient(bootstrap_servers=broker)
            await admin.start()
            try:
                await verify_topics(admin, created)
            finally:
                await admin.close()
        return True

    await eventually(every_broker_knows_the_topics, True, timeout=60, interval=0.5)
    return created


@pytest.fixture(scope="module")
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor}) as http:
        yield http


async def open_account(client: httpx.AsyncClient) -> str:
    """Retried with its key while it is not decided yet: the first commands on a fresh cluster wait for
    the group coordinator and the internal topics, replicated three times, to come up."""
    key, deadline = {"Idempotency-Key": f"open-{uuid.uuid4()}"}, time.monotonic() + 120
    while True:
        opened = await client.post("/accounts", json={"owner": "Cluster", "currency": "EUR"}, headers=key)
        if opened.status_code == 201 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert opened.status_code == 201, opened.text
    return str(opened.json()["aggregate_id"])


async def test_every_topic_is_replicated_three_times_with_two_in_sync(ns: Settings, client: httpx.AsyncClient) -> None:
    account_id = await open_account(client)
    assert (await client.post(f"/accounts/{account_id}/deposits", json={"amount": 5})).status_code == 200
    admin = AIOKafkaAdminClient(bootstrap_servers=ns.kafka_bootstrap)
    await admin.start()
    try:
        topics = [ns.topic(name) for name in ("commands", "events", "aggregates", "command-results", "notifications")]
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    assert {len(p["replicas"]) for topic in described for p in topic["partitions"]} == {3}
    assert {len(p["isr"]) for topic in described for p in topic["partitions"]} == {3}


async def deposit_until_decided(client: httpx.AsyncClient, account_id: str, key: str, deadline: float) -> int:
    """A retrying client: the same key after a 503, a 202 or a dropped connection, until a 200."""
    statuses = []
    while time.monotonic() < deadline:
        try:
            answer = await client.post(
                f"/accounts/{account_id}/deposits", json={"amount": 1}, headers={"Idempotency-Key": key}
            )
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                return len(statuses)
        except httpx.TransportError:
            statuses.append(0)
        await asyncio.sleep(0.2)
    raise AssertionError(f"deposit {key} never decided: {statuses}")


async def test_a_crashed_broker_loses_nothing_and_doubles_nothing(ns: Settings, client: httpx.AsyncClient) -> None:
    accounts = [await open_account(client) for _ in range(6)]
    keys: dict[str, str] = {}
    longest_gap, last_success = 0.0, time.monotonic()

    async def round_of_deposits(tag: str) -> None:
        nonlocal longest_gap, last_success
        for account_id in accounts:
            key = f"{tag}-{uuid.uuid4()}"
            keys[key] = account_id
            await deposit_until_decided(client, account_id, key, time.monotonic() + 90)
            now = time.monotonic()
            longest_gap, last_success = max(longest_gap, now - last_success), now

    await round_of_deposits("before")
    await asyncio.to_thread(run_infra, "kill", "cluster-2")  # SIGKILL: a crash, not a shutdown
    try:
        await round_of_deposits("while-down")
    finally:
        await asyncio.to_thread(run_infra, "up", "cluster-2")
    await round_of_deposits("after")

    events = await read_events(ns)
    deposits = Counter(e.aggregate_id for e in events if e.type == "FundsDeposited" and e.aggregate_id in accounts)
    assert deposits == Counter(keys.values())  # each key applied exactly once
    assert_versions_gapless(events)
    print(f"\ncluster: longest stretch without a decided deposit around the crash: {longest_gap:.1f}s")
