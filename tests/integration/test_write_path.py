"""The write path over HTTP, with the processor running in the API process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.config import Settings
from app.eventstore.processor import run_processor
from tests.support import api_client, assert_versions_gapless, end_offsets, fresh_namespace, read_events

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings)


@pytest.fixture(scope="module")
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor}) as http:
        yield http


async def open_account(client: httpx.AsyncClient, balance: int = 0, currency: str = "EUR") -> str:
    response = await client.post("/accounts", json={"owner": "Ada Lovelace", "currency": currency})
    assert response.status_code == 201, response.text
    account_id = str(response.json()["aggregate_id"])
    assert response.headers["location"] == f"/accounts/{account_id}"
    if balance:
        deposit = await client.post(f"/accounts/{account_id}/deposits", json={"amount": balance})
        assert deposit.status_code == 200, deposit.text
    return account_id


async def events_of(ns: Settings, account_id: str) -> list[tuple[int, str, str]]:
    return [(e.version, e.type, e.command_id) for e in await read_events(ns) if e.aggregate_id == account_id]


async def test_opening_an_account_answers_with_its_first_version(client: httpx.AsyncClient) -> None:
    response = await client.post("/accounts", json={"owner": "Grace Hopper", "currency": "USD"})
    body = response.json()
    assert response.status_code == 201
    assert body["version"] == 1 and response.headers["etag"] == '"1"'
    partition, _, offset = body["position"].partition(":")
    assert partition.isdigit() and offset.isdigit()


async def test_concurrent_withdrawals_never_overdraw(client: httpx.AsyncClient, ns: Settings) -> None:
    account_id = await open_account(client, balance=100)
    responses = await asyncio.gather(
        *(client.post(f"/accounts/{account_id}/withdrawals", json={"amount": 1}) for _ in range(200))
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 100, 422: 100}
    refused = [r for r in responses if r.status_code == 422]
    assert all(r.headers["content-type"] == PROBLEM for r in refused)
    assert {r.json()["type"] for r in refused} == {"https://eventline.dev/problems/insufficient-funds"}
    assert_versions_gapless(await read_events(ns))
    events = await events_of(ns, account_id)
    assert [version for version, _, _ in events] == list(range(1, 103))
    assert Counter(kind for _, kind, _ in events) == {"AccountOpened": 1, "FundsDeposited": 1, "FundsWithdrawn": 100}


async def test_if_match_guards_the_version(client: httpx.AsyncClient) -> None:
    account_id = await open_account(client)
    stale = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 5}, headers={"If-Match": '"7"'})
    fresh = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 5}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["actual"] == 1
    assert fresh.status_code == 200 and fresh.json()["version"] == 2


async def test_an_idempotency_key_gives_the_same_result_once(client: httpx.AsyncClient, ns: Settings) -> None:
    account_id = await open_account(client)
    key = {"Idempotency-Key": f"deposit-{uuid.uuid4()}"}
    first, again = [
        await client.post(f"/accounts/{account_id}/deposits", json={"amount": 30}, headers=key) for _ in range(2)
    ]
    other = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 31}, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
    deposits = [e for e in await events_of(ns, account_id) if e[1] == "FundsDeposited"]
    assert len(deposits) == 1


async def test_opening_with_an_idempotency_key_opens_one_account(client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": f"open-{uuid.uuid4()}"}
    body = {"owner": "Ada", "currency": "EUR"}
    first, again = [await client.post("/accounts", json=body, headers=key) for _ in range(2)]
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()


async def test_unknown_account_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/accounts/{uuid.uuid4()}/deposits", json={"amount": 1})
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM


async def test_respond_async_answers_202_with_a_location(client: httpx.AsyncClient) -> None:
    account_id = await open_account(client)
    response = await client.post(
        f"/accounts/{account_id}/deposits", json={"amount": 1}, headers={"Prefer": "respond-async"}
    )
    assert response.status_code == 202
    assert response.headers["location"] == f"/commands/{response.json()['command_id']}"


BAD_BODIES: list[tuple[str, object]] = [
    ("string amount", {"amount": "10"}),
    ("float amount", {"amount": 1.5}),
    ("boolean amount", {"amount": True}),
    ("zero", {"amount": 0}),
    ("negative", {"amount": -5}),
    ("too large", {"amount": 10**12 + 1}),
    ("unknown field", {"amount": 5, "memo": "x"}),
    ("missing amount", {}),
    ("array", [1, 2]),
    ("long reference", {"amount": 5, "reference": "x" * 101}),
]


async def test_bad_input_is_refused_and_nothing_is_written(client: httpx.AsyncClient, ns: Settings) -> None:
    account_id = await open_account(client)
    before = await end_offsets(ns)
    url = f"/accounts/{account_id}/deposits"
    responses = [await client.post(url, json=body) for _, body in BAD_BODIES]
    responses += [
        await client.post(url, content=b"{not json", headers={"content-type": "application/json"}),
        await client.post("/accounts/not-a-uuid/deposits", json={"amount": 1}),
        await client.post("/accounts", json={"owner": "Ada", "currency": "XYZ"}),
        await client.post("/accounts", json={"owner": "Ada", "currency": "eur"}),
        await client.post("/accounts", json={"owner": "", "currency": "EUR"}),
        await client.post("/accounts", json={"owner": "Ada\x00", "currency": "EUR"}),
        await client.post(url, json={"amount": 1}, headers={"If-Match": "yesterday"}),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == response.status_code
    assert await end_offsets(ns) == before


async def test_kafka_down_is_a_fast_503(client: httpx.AsyncClient, ns: Settings, infra: Callable[..., None]) -> None:
    account_id = await open_account(client)
    infra("down", "kafka")
    started = time.monotonic()
    response = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 1})
    elapsed = time.monotonic() - started
    infra("up", "kafka")
    assert response.status_code == 503 and response.headers["content-type"] == PROBLEM
    assert elapsed < ns.kafka_send_timeout_s + 1
    # It names the dependency, not its internals (aiokafka's text names brokers): that goes to the log.
    assert response.json()["detail"].startswith("Kafka did not acknowledge the command in time")
    assert "127.0.0.1" not in response.text and "Error" not in response.text
