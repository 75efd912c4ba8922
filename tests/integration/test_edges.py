"""The API's edges (issue 13's reproductions): forged cursors and unsatisfiable consistency tokens
are 400 problems at once, never a 500 or a wait; the open AsyncAPI document names no broker."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from app.api import cursors
from app.config import Settings
from app.eventstore.kafka import connection
from tests.support import api_client, fresh_namespace

PROBLEM = "application/problem+json"
WAIT_S = 20.0  # how long a satisfiable but unreached token would wait: far longer than a 400 takes


def forged(*values: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    ns = await fresh_namespace(settings, consistency_timeout_s=WAIT_S)
    async with api_client(ns) as http:
        yield http


SOMEONE = uuid.uuid4()
FORGED = [
    (f"/accounts/{SOMEONE}/transactions", "WzIxNDc0ODM2NDhd", {}),  # the reproduction: [2147483648]
    (f"/accounts/{SOMEONE}/transactions", forged("ledger", 2**31), {}),
    ("/events", forged("log", 0, 2**63), {}),
    ("/events", forged("ledger", 3), {}),  # another route's cursor
    ("/events", forged("aggregate", 0, 2**31), {"aggregate_id": str(SOMEONE)}),
    (f"/accounts/{SOMEONE}/inbox", forged("timeline", 10**18, 0, 0), {}),
    (f"/conversations/{SOMEONE}/messages", forged("timeline", 10**18, 0, 0), {}),
]


@pytest.mark.parametrize(("path", "cursor", "query"), FORGED)
async def test_a_forged_or_out_of_range_cursor_is_a_400(
    client: httpx.AsyncClient, path: str, cursor: str, query: dict[str, str]
) -> None:
    answer = await client.get(path, params={**query, "cursor": cursor})
    assert (answer.status_code, answer.headers["content-type"]) == (400, PROBLEM), answer.text
    assert answer.json()["type"].endswith("/invalid-cursor")


# The largest values each cursor may hold reach the database and page nothing: no overflow there.
LARGEST = [
    (f"/accounts/{SOMEONE}/transactions", cursors.LEDGER, 404, {}),  # the account does not exist
    ("/events", cursors.EVENTS_BY_POSITION, 200, {}),
    ("/events", cursors.EVENTS_BY_VERSION, 200, {"aggregate_id": str(SOMEONE)}),
    (f"/accounts/{SOMEONE}/inbox", cursors.TIMELINE, 200, {}),
]


@pytest.mark.parametrize(("path", "kind", "status", "query"), LARGEST)
async def test_the_largest_cursor_values_are_queried_without_error(
    client: httpx.AsyncClient, path: str, kind: cursors.CursorKind, status: int, query: dict[str, str]
) -> None:
    answer = await client.get(path, params={**query, "cursor": kind.encode(*kind.bounds)})
    assert answer.status_code == status, answer.text
    if status == 200:
        assert answer.json()["items"] == []


@pytest.mark.parametrize("token", ["99:0", "0:1000000000000", "0:0,3:5"])
async def test_a_consistency_token_no_wait_can_satisfy_is_a_400_at_once(client: httpx.AsyncClient, token: str) -> None:
    """A partition the log does not have, or an offset at or past its end (the topics are empty)."""
    started = time.monotonic()
    answer = await client.get(f"/accounts/{SOMEONE}", headers={"X-Consistent-With": token})
    assert (answer.status_code, answer.headers["content-type"]) == (400, PROBLEM), answer.text
    assert answer.json()["type"].endswith("/unsatisfiable-consistency-token")
    assert time.monotonic() - started < WAIT_S  # refused, not waited out (a wait ends in 503)


async def test_the_open_asyncapi_document_names_no_broker(client: httpx.AsyncClient) -> None:
    answer = await client.get("/asyncapi.json")
    assert answer.status_code == 200
    assert "servers" not in answer.json()
    assert "127.0.0.1" not in answer.text and "19092" not in answer.text


async def test_a_token_for_an_event_not_yet_marked_committed_is_waited_for_not_refused(settings: Settings) -> None:
    """A transaction's commit markers reach its partitions one by one, so a client can hold a
    command's answer (its result partition marked) while the events partition still shows the
    transaction open. A token naming that event is before the log's end: it is waited for (here,
    since this transaction never commits, until the 503), not refused as past the end."""
    ns = await fresh_namespace(settings, consistency_timeout_s=1.0)
    producer = AIOKafkaProducer(**connection(ns), transactional_id=f"{ns.topic('test-open-transaction')}")
    await producer.start()
    try:
        await producer.begin_transaction()
        written = await producer.send_and_wait(ns.topic("events"), b"{}", key=b"k", partition=0)
        async with api_client(ns) as http:
            answer = await http.get(f"/accounts/{SOMEONE}", headers={"X-Consistent-With": f"0:{written.offset}"})
        await producer.abort_transaction()
    finally:
        await producer.stop()
    assert (answer.status_code, answer.headers["content-type"]) == (503, PROBLEM), answer.text
    assert answer.json()["type"].endswith("/not-yet-consistent")
