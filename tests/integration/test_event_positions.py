"""A command's position is where its events really are, including when the writer predicts it.

After its first transaction a partition's writer knows where its event log
ends and predicts the offsets of the next batch's events, so it can send the
results in the same round trip (app/eventstore/shard_writer.py). These
tests hold the predictions against the log itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from app.config import Settings
from app.eventstore.processor import run_processor
from app.observability.metrics import REGISTRY
from tests.support import api_client, fresh_namespace, read_topic, write_foreign_record


@pytest.fixture(scope="module")
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings)


@pytest.fixture(scope="module")
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor}) as http:
        yield http


async def open_accounts(client: httpx.AsyncClient, count: int) -> list[str]:
    opened = await asyncio.gather(
        *(client.post("/accounts", json={"owner": "Position", "currency": "EUR"}) for _ in range(count))
    )
    assert all(r.status_code == 201 for r in opened), [r.text for r in opened]
    return [r.json()["aggregate_id"] for r in opened]


async def last_event_of_each_command(ns: Settings) -> dict[str, str]:
    """command id → "partition:offset" of its last event, read from the log (foreign records skipped)."""
    found: dict[str, str] = {}
    for record in await read_topic(ns, "events"):
        try:
            command_id = orjson.loads(record.value or b"")["command_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        found[command_id] = f"{record.partition}:{record.offset}"
    return found


async def test_every_answered_position_is_where_the_events_are(client: httpx.AsyncClient, ns: Settings) -> None:
    accounts = await open_accounts(client, 12)
    # Concurrent commands on few aggregates: batches of several commands, many in a row per partition.
    answers = await asyncio.gather(
        *(client.post(f"/accounts/{accounts[n % len(accounts)]}/deposits", json={"amount": 1 + n}) for n in range(240))
    )
    assert all(a.status_code == 200 for a in answers), {a.status_code for a in answers}
    logged = await last_event_of_each_command(ns)
    for answer in answers:
        body = answer.json()
        assert body["position"] == logged[body["command_id"]], body


async def test_a_foreign_record_in_the_event_log_is_caught_before_a_wrong_position_is_given(
    client: httpx.AsyncClient, ns: Settings
) -> None:
    [account] = await open_accounts(client, 1)
    for _ in range(3):  # the writer of the account's partition now predicts offsets
        assert (await client.post(f"/accounts/{account}/deposits", json={"amount": 1})).status_code == 200
    # Nothing but the processor may write events; something did anyway, shifting every offset after it.
    await write_foreign_record(ns, account, b"not an event")
    rewritten, aborted = batches("rewritten"), batches("aborted")
    answer = await client.post(f"/accounts/{account}/deposits", json={"amount": 1})
    assert answer.status_code == 200, answer.text
    # The batch was written again by the same writer, not after a takeover of the partition.
    assert (batches("rewritten") - rewritten, batches("aborted") - aborted) == (1, 0)
    body = answer.json()
    assert body["version"] == 5
    assert body["position"] == (await last_event_of_each_command(ns))[body["command_id"]]


def batches(outcome: str) -> float:
    """This process's processor transactions with `outcome` so far (the processor runs in the test)."""
    return REGISTRY.get_sample_value("eventline_processor_batches_total", {"outcome": outcome}) or 0.0
