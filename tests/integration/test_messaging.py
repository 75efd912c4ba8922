"""The paid-messaging scenario: Payments and Messaging connected only by events and the saga."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from functools import partial

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.config import Settings
from app.eventstore.processor import run_processor
from app.sagas.payment import reference_for
from projections.projector import run_projector
from tests.support import Process, api_client, fresh_namespace, read_events
from tests.waiting import eventually

PRICE_TWO_PARTY = 5 + 2  # base fee + one recipient, the default tariff


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings, own_database=True, consistency_timeout_s=15)


@pytest.fixture
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as http:
        yield http


@pytest.fixture
def saga(ns: Settings) -> Iterator[Process]:
    process = Process(ns, "saga").start()
    yield process
    process.stop()


async def open_account(client: httpx.AsyncClient, balance: int) -> tuple[str, str]:
    opened = await client.post("/accounts", json={"owner": "Messenger", "currency": "EUR"})
    account_id, token = opened.json()["aggregate_id"], opened.json()["position"]
    if balance:
        deposit = await client.post(f"/accounts/{account_id}/deposits", json={"amount": balance})
        token = deposit.json()["position"]
    return account_id, token


async def start_conversation(client: httpx.AsyncClient, *participants: tuple[str, str]) -> str:
    token = ",".join(p[1] for p in participants)
    started = await client.post(
        "/conversations", json={"participants": [p[0] for p in participants]}, headers={"X-Consistent-With": token}
    )
    assert started.status_code == 201, started.text
    conversation_id = str(started.json()["conversation_id"])
    # Posting checks the conversation in Messaging's read model: a client carries the token.
    seen = await client.get(
        f"/conversations/{conversation_id}/messages", headers={"X-Consistent-With": started.json()["position"]}
    )
    assert seen.status_code == 200, seen.text
    return conversation_id


async def status_of(client: httpx.AsyncClient, message_id: str) -> str | None:
    response = await client.get(f"/messages/{message_id}")
    return response.json()["status"] if response.status_code == 200 else None


async def balance_of(client: httpx.AsyncClient, account_id: str) -> int:
    return int((await client.get(f"/accounts/{account_id}")).json()["balance"])


async def test_a_paid_message_is_delivered_once_and_charged_once(
    client: httpx.AsyncClient, ns: Settings, saga: Process
) -> None:
    ada, bob = await open_account(client, 100), await open_account(client, 0)
    conversation_id = await start_conversation(client, ada, bob)
    sent = await client.post(
        f"/conversations/{conversation_id}/messages", json={"sender": ada[0], "body": "Hello, Bob"}
    )
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert (body["status"], body["price"], body["currency"]) == ("pending_payment", PRICE_TWO_PARTY, "EUR")
    await eventually(lambda: status_of(client, body["message_id"]), "delivered")
    inbox = (await client.get(f"/accounts/{bob[0]}/inbox")).json()["items"]
    assert [(i["message_id"], i["body"], i["read"]) for i in inbox] == [(body["message_id"], "Hello, Bob", False)]
    assert (await client.get(f"/accounts/{ada[0]}/inbox")).json()["items"] == []
    delivered = (await client.get(f"/conversations/{conversation_id}/messages")).json()["items"]
    assert [m["message_id"] for m in delivered] == [body["message_id"]]
    await eventually(lambda: balance_of(client, ada[0]), 100 - PRICE_TWO_PARTY)
    charges = [e for e in await read_events(ns) if e.type == "AccountCharged"]
    assert [(c.aggregate_id, c.data["amount"], c.data["reference"]) for c in charges] == [
        (ada[0], PRICE_TWO_PARTY, reference_for(body["message_id"]))
    ]
    read = await client.post(f"/messages/{body['message_id']}/read", json={"reader": bob[0]})
    assert read.status_code == 200
    unread = await client.get(
        f"/accounts/{bob[0]}/inbox?unread_only=true", headers={"X-Consistent-With": read.json()["position"]}
    )
    assert unread.json()["items"] == []


async def test_insufficient_funds_reject_the_message_and_leave_the_balance(
    client: httpx.AsyncClient, saga: Process
) -> None:
    ada, bob = await open_account(client, 3), await open_account(client, 0)
    conversation_id = await start_conversation(client, ada, bob)
    sent = await client.post(f"/conversations/{conversation_id}/messages", json={"sender": ada[0], "body": "x"})
    message_id = sent.json()["message_id"]
    await eventually(lambda: status_of(client, message_id), "rejected")
    message = (await client.get(f"/messages/{message_id}")).json()
    assert "insufficient funds" in message["reason"]
    assert await balance_of(client, ada[0]) == 3
    assert (await client.get(f"/accounts/{bob[0]}/inbox")).json()["items"] == []


async def test_only_participants_post_and_only_to_existing_conversations(client: httpx.AsyncClient) -> None:
    ada, bob, eve = [await open_account(client, 10) for _ in range(3)]
    conversation_id = await start_conversation(client, ada, bob)
    outsider = await client.post(f"/conversations/{conversation_id}/messages", json={"sender": eve[0], "body": "x"})
    nowhere = await client.post(
        "/conversations/6f1c1f9e-0000-4000-8000-000000000000/messages", json={"sender": ada[0], "body": "x"}
    )
    unknown = await client.post(
        "/conversations", json={"participants": [ada[0], "6f1c1f9e-0000-4000-8000-00000000abcd"]}
    )
    assert outsider.status_code == 403 and outsider.headers["content-type"] == "application/problem+json"
    assert nowhere.status_code == 404
    assert unknown.status_code == 422 and unknown.json()["unknown"] == ["6f1c1f9e-0000-4000-8000-00000000abcd"]


async def test_messages_wait_while_the_saga_is_down_and_settle_when_it_returns(
    client: httpx.AsyncClient, ns: Settings
) -> None:
    ada, bob = await open_account(client, 2000), await open_account(client, 0)
    conversation_id = await start_conversation(client, ada, bob)
    gate = asyncio.Semaphore(16)

    async def send(n: int) -> str:
        async with gate:
            sent = await client.post(
                f"/conversations/{conversation_id}/messages", json={"sender": ada[0], "body": f"message {n}"}
            )
            assert sent.status_code == 202, sent.text
            return str(sent.json()["message_id"])

    message_ids = await asyncio.gather(*(send(n) for n in range(500)))
    statuses = Counter([await status_of(client, m) for m in message_ids[::50]])
    assert statuses == {"pending_payment": 10}
    saga = Process(ns, "saga").start()
    try:

        async def settled() -> int:
            events = await read_events(ns)
            return sum(1 for e in events if e.type in ("MessageDelivered", "MessageRejected"))

        await eventually(settled, 500, timeout=120)
        events = await read_events(ns)
        delivered = {e.aggregate_id for e in events if e.type == "MessageDelivered"}
        prices = {e.aggregate_id: e.data["price"] for e in events if e.type == "MessageSubmitted"}
        charged = [e.data["amount"] for e in events if e.type == "AccountCharged"]
        # 2000 / 7 = 285 messages can be paid for; the rest are declined.
        assert len(delivered) == 2000 // PRICE_TWO_PARTY
        assert sum(charged) == sum(prices[m] for m in delivered)

        # Reset the saga's consumer group to the beginning and run it again: nothing happens twice.
        saga.stop()
        await reset_group(ns, ns.saga_group)
        saga = Process(ns, "saga").start()
        await wait_until_consumed(ns, ns.saga_group, "events")
        await wait_until_consumed(ns, ns.processor_group, "commands")
        again = await read_events(ns)
        assert Counter(e.type for e in again) == Counter(e.type for e in events)
    finally:
        saga.stop()


async def reset_group(ns: Settings, group: str) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=ns.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(ns.topic("events"), p) for p in range(ns.partitions)]
        consumer.assign(tps)
        await consumer.commit({tp: 0 for tp in tps})
    finally:
        await consumer.stop()


async def wait_until_consumed(ns: Settings, group: str, topic: str) -> None:
    """Until the group has committed past every record of the topic (a transaction marker may remain)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=ns.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(ns.topic(topic), p) for p in range(ns.partitions)]
        ends = await consumer.end_offsets(tps)

        async def behind() -> int:
            committed = [await consumer.committed(tp) or 0 for tp in tps]
            return sum(max(0, ends[tp] - c - 1) for tp, c in zip(tps, committed, strict=True))

        await eventually(behind, 0, timeout=60)
    finally:
        await consumer.stop()


async def test_inbox_and_conversation_page_through_every_message_once(client: httpx.AsyncClient, saga: Process) -> None:
    """Keyset pages follow `next_cursor` to the end: each delivered message once, in order."""
    ada, bob = await open_account(client, 100), await open_account(client, 0)
    conversation_id = await start_conversation(client, ada, bob)
    sent = []
    for n in range(5):
        posted = await client.post(
            f"/conversations/{conversation_id}/messages", json={"sender": ada[0], "body": f"{n}"}
        )
        assert posted.status_code == 202, posted.text
        sent.append(posted.json()["message_id"])
    for message_id in sent:
        await eventually(partial(status_of, client, message_id), "delivered")

    async def every_page(path: str) -> list[str]:
        seen, cursor = [], None
        for _ in range(10):
            page = await client.get(path, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            seen += [item["message_id"] for item in page.json()["items"]]
            if (cursor := page.json()["next_cursor"]) is None:
                return seen
        raise AssertionError(f"{path}: more pages than messages")

    delivered = await every_page(f"/conversations/{conversation_id}/messages")  # delivery order
    assert sorted(delivered) == sorted(sent) and len(delivered) == 5
    assert await every_page(f"/accounts/{bob[0]}/inbox") == delivered[::-1]  # newest first
