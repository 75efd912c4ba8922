"""Looking back: an account as it was (folded from its events) and a message's timeline across both services."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.config import Settings
from app.db import create_engine
from app.eventstore.processor import run_processor
from app.sagas.payment import command_id_for
from projections.projector import run_projector
from tests.conftest import ROOT
from tests.support import Process, api_client, environment, fresh_namespace
from tests.waiting import eventually


@pytest.fixture(scope="module")
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings, own_database=True, consistency_timeout_s=15)


@pytest.fixture(scope="module")
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as http:
        yield http


@pytest.fixture(scope="module")
def saga(ns: Settings) -> Iterator[Process]:
    process = Process(ns, "saga").start()
    yield process
    process.stop()


async def get(client: httpx.AsyncClient, path: str, token: str | None = None, **params: Any) -> httpx.Response:
    return await client.get(path, params=params, headers={"X-Consistent-With": token} if token else {})


async def test_an_account_as_of_a_version_or_a_moment_is_folded_from_its_events(client: httpx.AsyncClient) -> None:
    opened = await client.post("/accounts", json={"owner": "Ada", "currency": "EUR"})
    account = opened.json()["aggregate_id"]
    token = ""
    for path, amount in (("deposits", 100), ("withdrawals", 30), ("deposits", 5)):
        moved = await client.post(f"/accounts/{account}/{path}", json={"amount": amount})
        assert moved.status_code == 200, moved.text
        token = moved.json()["position"]
    events = (await get(client, "/events", token, aggregate_id=account)).json()["items"]
    assert [e["version"] for e in events] == [1, 2, 3, 4]

    for event in events:
        then = await get(client, f"/accounts/{account}", token, version=event["version"])
        assert then.status_code == 200, then.text
        expected = event["data"].get("balance_after", 0)
        assert (then.json()["version"], then.json()["balance"], then.headers["ETag"]) == (
            event["version"],
            expected,
            f'"{event["version"]}"',
        )
        at = await get(client, f"/accounts/{account}", token, as_of=event["occurred_at"])
        assert (at.json()["version"], at.json()["balance"]) == (event["version"], expected)

    now = (await get(client, f"/accounts/{account}", token)).json()
    future = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    later = (await get(client, f"/accounts/{account}", token, as_of=future)).json()
    assert (later["version"], later["balance"], later["owner"]) == (4, now["balance"], "Ada") == (4, 75, "Ada")

    first = datetime.fromisoformat(events[0]["occurred_at"])
    before = await get(client, f"/accounts/{account}", token, as_of=(first - timedelta(milliseconds=1)).isoformat())
    assert (before.status_code, before.headers["content-type"]) == (404, "application/problem+json")
    assert (await get(client, f"/accounts/{account}", token, version=5)).status_code == 404
    assert (await get(client, f"/accounts/{account}", token, version=2, as_of=future)).status_code == 400
    naive = await get(client, f"/accounts/{account}", token, as_of="2026-12-05T12:00:00")
    assert (naive.status_code, naive.headers["content-type"]) == (422, "application/problem+json")


async def test_a_paid_message_timeline_shows_each_step_and_what_caused_it(
    client: httpx.AsyncClient, saga: Process
) -> None:
    accounts = []
    for owner in ("Sender", "Recipient"):
        opened = await client.post("/accounts", json={"owner": owner, "currency": "EUR"})
        accounts.append(opened.json()["aggregate_id"])
    sender, recipient = accounts
    deposit = await client.post(f"/accounts/{sender}/deposits", json={"amount": 1000})
    started = await client.post(
        "/conversations",
        json={"participants": [sender, recipient]},
        headers={"X-Consistent-With": deposit.json()["position"]},
    )
    conversation = started.json()["conversation_id"]
    await get(client, f"/conversations/{conversation}/messages", started.json()["position"])
    sent = await client.post(f"/conversations/{conversation}/messages", json={"sender": sender, "body": "hi"})
    message = sent.json()["message_id"]

    async def steps() -> list[str]:
        answer = await client.get(f"/messages/{message}/timeline")
        return [step["step"] for step in answer.json()["steps"]] if answer.status_code == 200 else []

    await eventually(steps, ["submitted", "charge asked", "charged", "delivered"], timeout=60)
    shown = (await client.get(f"/messages/{message}/timeline")).json()
    submitted, asked, charged, delivered = shown["steps"]
    assert submitted["waited_ms"] is None and all(step["waited_ms"] >= 0 for step in shown["steps"][1:])
    assert [step["service"] for step in shown["steps"]] == ["messaging", "payments", "payments", "messaging"]
    # The chain, as the ids say it: each step was caused by the one before.
    assert asked["id"] == command_id_for("charge", submitted["id"]) and asked["caused_by"] == submitted["id"]
    assert charged["caused_by"] == asked["id"]
    assert delivered["caused_by"] == command_id_for("deliver", charged["id"])
    events = {e["event_id"]: e for e in (await get(client, "/events", aggregate_id=message)).json()["items"]}
    when = datetime.fromisoformat(events[submitted["id"]]["occurred_at"])
    assert datetime.fromisoformat(submitted["at"].replace("Z", "+00:00")) == when
    assert shown["correlation_id"] == events[submitted["id"]]["correlation_id"]

    missing = await client.get(f"/messages/{sender}/timeline")  # an account's id is not a message's
    assert (missing.status_code, missing.headers["content-type"]) == (404, "application/problem+json")


async def test_a_read_model_is_built_as_of_a_past_moment_beside_the_live_one(
    ns: Settings, client: httpx.AsyncClient
) -> None:
    opened = await client.post("/accounts", json={"owner": "Audited", "currency": "EUR"})
    account = opened.json()["aggregate_id"]
    first = await client.post(f"/accounts/{account}/deposits", json={"amount": 100})
    second = await client.post(f"/accounts/{account}/deposits", json={"amount": 50})
    token = second.json()["position"]
    events = (await get(client, "/events", token, aggregate_id=account)).json()["items"]
    moment = next(e["occurred_at"] for e in events if e["version"] == first.json()["version"])
    assert datetime.fromisoformat(events[-1]["occurred_at"]) > datetime.fromisoformat(moment)
    schema = f"audit_{uuid.uuid4().hex[:8]}"

    built = await asyncio.to_thread(run_cli, ns, "rebuild", "accounts", "ledger", "--as-of", moment, "--into", schema)
    assert built.returncode == 0, built.stdout + built.stderr

    engine = create_engine(ns)
    try:
        async with engine.connect() as db:
            then = await db.scalar(
                text(f"SELECT balance FROM {schema}.accounts WHERE account_id = :id"), {"id": account}
            )
            moves = await db.scalar(
                text(f"SELECT count(*) FROM {schema}.account_ledger WHERE account_id = :id"), {"id": account}
            )
            left = await db.scalar(
                text("SELECT count(*) FROM projection_checkpoints WHERE projection LIKE :name"), {"name": f"%@{schema}"}
            )
    finally:
        await engine.dispose()
    assert (then, moves, left) == (100, 1, 0)
    assert (await get(client, f"/accounts/{account}", token)).json()["balance"] == 150  # the live one untouched

    refused = await asyncio.to_thread(run_cli, ns, "rebuild", "accounts", "--as-of", moment, "--into", "public")
    assert refused.returncode == 2 and "is not a schema" in refused.stdout, refused.stdout


def run_cli(ns: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = environment(ns) | {"COLUMNS": "200"}  # rich wraps at 80 columns without a terminal
    return subprocess.run(
        [str(ROOT / ".venv/bin/eventline"), *args], env=env, capture_output=True, text=True, timeout=300
    )
