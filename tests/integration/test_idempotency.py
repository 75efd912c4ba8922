"""Clients that retry: an Idempotency-Key applies a command once, for a time, per caller — over HTTP.

The processor runs in the API process; every claim is checked against the
events in the log, not only against the answers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from app.api_keys import hash_key
from app.config import Settings
from app.eventstore.processor import run_processor
from tests.support import api_client, fresh_namespace, read_events, read_topic
from tests.waiting import eventually

KEYS = {"shop": "shop-secret-key-0123456789", "billing": "billing-secret-key-0123456789"}


def as_caller(name: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {KEYS[name]}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


@pytest.fixture(scope="module")
async def ns(settings: Settings) -> Settings:
    configured = ",".join(f"{name}:writer:{hash_key(key)}" for name, key in KEYS.items())
    return await fresh_namespace(settings, api_keys=configured)


@pytest.fixture(scope="module")
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor}) as http:
        http.headers.update(as_caller("shop"))
        yield http


async def open_account(client: httpx.AsyncClient, balance: int = 0) -> str:
    opened = await client.post("/accounts", json={"owner": "Ada Lovelace", "currency": "EUR"})
    assert opened.status_code == 201, opened.text
    account_id = str(opened.json()["aggregate_id"])
    if balance:
        assert (await client.post(f"/accounts/{account_id}/deposits", json={"amount": balance})).status_code == 200
    return account_id


async def balance_events(settings: Settings, account_id: str) -> list[tuple[str, int]]:
    return [(e.type, e.data.get("amount", 0)) for e in await read_events(settings) if e.aggregate_id == account_id]


async def test_a_retry_after_many_other_commands_is_answered_and_not_applied_again(
    client: httpx.AsyncClient,
    ns: Settings,
) -> None:
    """The 33-command reproduction: 40 keyed commands in between, 20 of them refused for a stale If-Match."""
    account_id = await open_account(client)
    key = f"inv-42-{uuid.uuid4()}"
    first = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 42}, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    for n in range(20):
        other = await client.post(
            f"/accounts/{account_id}/deposits", json={"amount": 1}, headers={"Idempotency-Key": f"other-{n}-{key}"}
        )
        assert other.status_code == 200
        stale = await client.post(
            f"/accounts/{account_id}/deposits",
            json={"amount": 1},
            headers={"If-Match": '"1"', "Idempotency-Key": f"stale-{n}-{key}"},
        )
        assert stale.status_code == 412

    retry = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 42}, headers={"Idempotency-Key": key})

    assert retry.status_code == 200 and retry.json() == first.json()
    deposits = [amount for kind, amount in await balance_events(ns, account_id) if kind == "FundsDeposited"]
    assert deposits.count(42) == 1 and len(deposits) == 21


async def test_a_retried_account_opening_answers_201_with_the_same_account(client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": f"open-{uuid.uuid4()}"}
    first = await client.post("/accounts", json={"owner": "Grace", "currency": "EUR"}, headers=key)
    for _ in range(40):  # other commands on the new account in between
        await client.post(f"/accounts/{first.json()['aggregate_id']}/deposits", json={"amount": 1})

    again = await client.post("/accounts", json={"owner": "Grace", "currency": "EUR"}, headers=key)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]


async def test_two_callers_with_one_key_send_two_commands(client: httpx.AsyncClient, ns: Settings) -> None:
    account_id = await open_account(client)
    key = f"order-{uuid.uuid4()}"

    shop = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 5}, headers=as_caller("shop", key))
    billing = await client.post(
        f"/accounts/{account_id}/deposits", json={"amount": 5}, headers=as_caller("billing", key)
    )

    assert shop.status_code == billing.status_code == 200
    assert shop.json()["command_id"] != billing.json()["command_id"]
    assert billing.json()["version"] == shop.json()["version"] + 1
    assert [a for k, a in await balance_events(ns, account_id) if k == "FundsDeposited"] == [5, 5]


async def test_one_key_on_two_accounts_is_two_commands(client: httpx.AsyncClient) -> None:
    first, second = await open_account(client), await open_account(client)
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}

    answers = await asyncio.gather(
        *(client.post(f"/accounts/{account}/deposits", json={"amount": 3}, headers=key) for account in (first, second))
    )

    assert [a.status_code for a in answers] == [200, 200]
    assert {a.json()["aggregate_id"] for a in answers} == {first, second}  # each got its own answer


async def test_the_same_key_with_another_body_is_refused_and_writes_nothing(
    client: httpx.AsyncClient,
    ns: Settings,
) -> None:
    account_id = await open_account(client)
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    assert (await client.post(f"/accounts/{account_id}/deposits", json={"amount": 7}, headers=key)).status_code == 200

    other = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 8}, headers=key)

    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
    assert [a for k, a in await balance_events(ns, account_id) if k == "FundsDeposited"] == [7]


async def test_concurrent_duplicates_all_get_the_one_result(client: httpx.AsyncClient, ns: Settings) -> None:
    account_id = await open_account(client, balance=100)
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}

    answers = await asyncio.gather(
        *(client.post(f"/accounts/{account_id}/withdrawals", json={"amount": 60}, headers=key) for _ in range(8))
    )

    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1  # same version, same position, same command
    withdrawals = [k for k, _ in await balance_events(ns, account_id) if k == "FundsWithdrawn"]
    assert len(withdrawals) == 1


async def test_a_remembered_refusal_is_answered_again(client: httpx.AsyncClient) -> None:
    account_id = await open_account(client, balance=10)
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    refused = await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": 25}, headers=key)
    await client.post(f"/accounts/{account_id}/deposits", json={"amount": 100})

    retry = await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": 25}, headers=key)

    assert refused.status_code == retry.status_code == 422
    assert retry.json()["type"].endswith("/insufficient-funds") and retry.json() == refused.json()


async def test_a_key_is_forgotten_after_its_retention_and_tombstoned(settings: Settings) -> None:
    """Retention by time: past it the key names a new command, and the changelog forgets the old one."""
    ns = await fresh_namespace(settings, idempotency_retention="PT2S")
    async with api_client(ns, workers={"processor": run_processor}) as client:
        account_id = await open_account(client)
        key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        first = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 9}, headers=key)
        assert (
            await client.post(f"/accounts/{account_id}/deposits", json={"amount": 9}, headers=key)
        ).json() == first.json()

        async def applied_again() -> int:
            again = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 9}, headers=key)
            return int(again.json()["version"])

        # Within the retention the answer is the first one (version 2); after it, a new deposit.
        assert await eventually(applied_again, 3, timeout=30, interval=0.5) == 3

        async def buried() -> bool:
            # Each batch tombstones what has expired; a deposit without a key makes a batch.
            await client.post(f"/accounts/{account_id}/deposits", json={"amount": 1})
            records = [r for r in await read_topic(ns, "aggregates") if r.key and r.key.startswith(b"command:")]
            return records[-1].value is None

        assert await eventually(buried, True, timeout=30, interval=0.5)
