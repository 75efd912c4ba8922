"""Commands that follow one another just work, without a consistency token between them (issue 14).

Commands are checked against read models that are a little behind by design; a fact the
API confirmed before a request (an account opened, a conversation started) must still be
seen by it. Through HTTP, against the real broker and database, no X-Consistent-With.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import select

from app.api.consistency import ConsistencyWaiter
from app.config import Settings
from app.db import create_engine
from app.domain import accounts
from app.eventstore.decision import decide_command
from app.eventstore.envelope import new_command, utc_now
from app.eventstore.partitioner import partition_for
from app.eventstore.processor import run_processor
from projections.projector import run_projector
from projections.tables import accounts as accounts_table
from tests.support import Process, api_client, fresh_namespace, read_events
from tests.waiting import eventually

CHAINS, AT_ONCE = 100, 5


@pytest.fixture(scope="module")
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings, own_database=True, consistency_timeout_s=15)


@pytest.fixture(scope="module")
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as http:
        await write_path_up(http)
        yield http


async def write_path_up(client: httpx.AsyncClient) -> None:
    """Until a command is decided (201): a processor just started owns no partition yet, and what
    is tested here is commands that follow one another, not the first command of a fresh system."""
    key = {"Idempotency-Key": f"warm-up-{uuid.uuid4()}"}

    async def opened() -> int:
        return (await client.post("/accounts", json={"owner": "Warm", "currency": "EUR"}, headers=key)).status_code

    await eventually(opened, 201, timeout=60, interval=0.3)


@pytest.fixture(scope="module")
def saga(ns: Settings) -> Iterator[Process]:
    process = Process(ns, "saga").start()
    yield process
    process.stop()


async def chain(client: httpx.AsyncClient) -> tuple[list[int], str]:
    """Open two accounts, fund one, start a conversation, post: each the moment the previous answers."""
    ada = await client.post("/accounts", json={"owner": "Ada", "currency": "EUR"})
    funded = await client.post(f"/accounts/{ada.json()['aggregate_id']}/deposits", json={"amount": 50})
    bob = await client.post("/accounts", json={"owner": "Bob", "currency": "EUR"})
    participants = [ada.json()["aggregate_id"], bob.json()["aggregate_id"]]
    started = await client.post("/conversations", json={"participants": participants})
    conversation = started.json().get("conversation_id")
    posted = await client.post(
        f"/conversations/{conversation}/messages", json={"sender": participants[0], "body": "at once"}
    )
    statuses = [answer.status_code for answer in (ada, funded, bob, started, posted)]
    return statuses, posted.json().get("message_id", "") if posted.status_code == 202 else posted.text


async def test_a_hundred_chains_of_commands_need_no_token(
    client: httpx.AsyncClient, ns: Settings, saga: Process
) -> None:
    async def worker() -> list[tuple[list[int], str]]:
        return [await chain(client) for _ in range(CHAINS // AT_ONCE)]

    chains = [c for done in await asyncio.gather(*(worker() for _ in range(AT_ONCE))) for c in done]
    wrong = [c for c in chains if c[0] != [201, 200, 201, 201, 202]]
    assert not wrong, f"{len(wrong)} of {CHAINS} chains failed, e.g. {wrong[:3]}"
    posted = {message_id for _, message_id in chains}

    async def delivered() -> int:
        events = await read_events(ns)
        return sum(1 for e in events if e.type == "MessageDelivered" and e.aggregate_id in posted)

    await eventually(delivered, CHAINS, timeout=120)
    events = await read_events(ns)
    charged = Counter(e.data["reference"] for e in events if e.type == "AccountCharged")
    assert len(charged) == CHAINS and set(charged.values()) == {1}  # each message charged once


async def test_an_account_that_never_existed_is_unknown_after_the_catch_up(client: httpx.AsyncClient) -> None:
    ada = (await client.post("/accounts", json={"owner": "Ada", "currency": "EUR"})).json()["aggregate_id"]
    never = "6f1c1f9e-0000-4000-8000-00000000abcd"
    answer = await client.post("/conversations", json={"participants": [ada, never]})
    assert answer.status_code == 422, answer.text  # not 503: the catch-up ended, the account is not there
    assert answer.json()["unknown"] == [never]


async def test_while_the_account_copy_cannot_catch_up_the_answer_is_503_then_201(settings: Settings) -> None:
    """Messaging's copy of the accounts is built by the projector: stopped, nothing can say an
    account just opened is missing or not, so the answer is 503 (retry), never 422."""
    ns = await fresh_namespace(settings, own_database=True, consistency_timeout_s=2)
    async with api_client(ns, workers={"processor": run_processor}) as client:
        await write_path_up(client)
        opened = [await client.post("/accounts", json={"owner": n, "currency": "EUR"}) for n in ("A", "B")]
        assert [o.status_code for o in opened] == [201, 201]
        participants = [o.json()["aggregate_id"] for o in opened]
        waited = await client.post("/conversations", json={"participants": participants})
        assert (waited.status_code, waited.headers.get("retry-after")) == (503, "1"), waited.text
        projector = Process(ns, "projector").start()
        try:

            async def start() -> int:
                return (await client.post("/conversations", json={"participants": participants})).status_code

            await eventually(start, 201, timeout=60)
        finally:
            projector.stop()


async def test_catching_up_waits_for_a_transaction_whose_marker_is_not_on_the_log_yet(
    ns: Settings, client: httpx.AsyncClient
) -> None:
    """A transaction's markers reach its partitions one by one after the commit is decided: the
    client may hold the answer while the events partition still shows the transaction open.
    An open transaction on the events log looks the same from outside; catching up must wait for
    it, and then see what it wrote (before, the end was read as it stood, and the wait was over
    at once, without the account)."""
    account_id = str(uuid.uuid4())
    opened = new_command(accounts.OpenAccount(owner="Late", currency="EUR"), account_id, principal="test")
    [event] = decide_command(None, opened, now=utc_now(), new_event_id=lambda: str(uuid.uuid4())).events
    engine = create_engine(ns)
    offsets, watermarks = (
        AIOKafkaConsumer(bootstrap_servers=ns.kafka_bootstrap, isolation_level=level)
        for level in ("read_committed", "read_uncommitted")
    )
    producer = AIOKafkaProducer(bootstrap_servers=ns.kafka_bootstrap, transactional_id=f"{ns.namespace}.late")
    for started in (offsets, watermarks, producer):
        await started.start()
    waiter = ConsistencyWaiter(ns, engine, offsets, watermarks)
    await waiter.start()
    try:
        await producer.begin_transaction()
        partition = partition_for(account_id, ns.partitions)
        await producer.send_and_wait(ns.topic("events"), event.encode(), key=account_id.encode(), partition=partition)
        catching_up = asyncio.create_task(waiter.caught_up_with_the_log("accounts"))
        # A window to watch for what must not happen: a slower machine only makes it a weaker check.
        returned, _ = await asyncio.wait({catching_up}, timeout=0.5)
        assert not returned, "caught up with a log whose transaction was still open"
        await producer.commit_transaction()
        await asyncio.wait_for(catching_up, timeout=30)
        async with engine.connect() as db:
            assert (
                await db.scalar(select(accounts_table.c.owner).where(accounts_table.c.account_id == account_id))
                == "Late"
            )
    finally:
        await waiter.stop()
        for stopped in (producer, watermarks, offsets):
            await stopped.stop()
        await engine.dispose()
