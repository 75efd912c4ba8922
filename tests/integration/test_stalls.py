"""Stalls are seen, not inferred from lag: a projector that stopped, and messages left waiting for their payment.

A real projector process is SIGSTOPped while commands flow; `/health/stalls`, `/projections` and
`/metrics` must say it stalled, and stop saying so once it moves again. A caught-up projection
whose checkpoint is old is not stalled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.eventstore.partitioner import partition_for
from app.eventstore.processor import run_processor
from tests.support import Process, api_client, fresh_namespace, paused
from tests.waiting import eventually

STALL_AFTER_S = 2.0


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(
        settings, own_database=True, projection_stall_after_s=STALL_AFTER_S, saga_pending_alert_s=STALL_AFTER_S
    )


@pytest.fixture
def projector(ns: Settings) -> Iterator[Process]:
    process = Process(ns, "projector").start()
    yield process
    process.stop()


@pytest.fixture
async def client(ns: Settings, projector: Process) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor}) as http:
        yield http


async def stalls(client: httpx.AsyncClient) -> tuple[int, list[str], int]:
    """The view's status, the stalled projections and the messages waiting too long for their payment."""
    answer = await client.get("/health/stalls")
    body: dict[str, Any] = answer.json()
    return answer.status_code, sorted(p["name"] for p in body["projections"]), body["saga"]["over_alert"]


async def accounts_view(client: httpx.AsyncClient) -> dict[str, Any]:
    return next(view for view in (await client.get("/projections")).json() if view["name"] == "accounts")


async def test_a_stopped_projector_is_reported_stalled_and_clears_once_it_moves(
    client: httpx.AsyncClient, projector: Process
) -> None:
    opened = await client.post("/accounts", json={"owner": "Ada", "currency": "EUR"})
    account = opened.json()["aggregate_id"]
    await eventually(lambda: stalls(client), (200, [], 0), timeout=60)

    # Caught up, and nothing new for longer than the threshold: an old checkpoint is not a stall.
    async def idle_long_enough() -> bool:
        view = await accounts_view(client)
        ages = [p["checkpoint_age_s"] or 0 for p in view["partitions"]]
        return view["lag"] == 0 and max(ages) > STALL_AFTER_S

    await eventually(idle_long_enough, True, timeout=30)
    assert await stalls(client) == (200, [], 0)

    with paused(projector.pid):
        for _ in range(5):
            deposit = await client.post(f"/accounts/{account}/deposits", json={"amount": 1})
            assert deposit.status_code == 200, deposit.text  # the write path does not need the projector

        async def accounts_stalled() -> bool:
            status, names, _ = await stalls(client)
            return status == 503 and "accounts" in names

        await eventually(accounts_stalled, True, timeout=30)
        view = await accounts_view(client)
        assert view["stalled"] and view["lag"] > 0 and view["checkpoint_age_s"] > STALL_AFTER_S
        metrics = (await client.get("/metrics")).text
        assert 'eventline_projection_stalled{projection="accounts"} 1.0' in metrics

    await eventually(lambda: stalls(client), (200, [], 0), timeout=60)
    assert 'eventline_projection_stalled{projection="accounts"} 0.0' in (await client.get("/metrics")).text
    assert (await client.get(f"/accounts/{account}")).json()["balance"] == 5


async def test_a_message_waiting_too_long_for_its_payment_is_reported_until_the_saga_runs(
    client: httpx.AsyncClient, ns: Settings
) -> None:
    ids = []
    for owner in ("Sender", "Recipient"):
        opened = await client.post("/accounts", json={"owner": owner, "currency": "EUR"})
        ids.append(opened.json()["aggregate_id"])
    deposit = await client.post(f"/accounts/{ids[0]}/deposits", json={"amount": 100})
    started = await client.post(
        "/conversations", json={"participants": ids}, headers={"X-Consistent-With": deposit.json()["position"]}
    )
    conversation = started.json()["conversation_id"]
    await client.get(
        f"/conversations/{conversation}/messages", headers={"X-Consistent-With": started.json()["position"]}
    )
    sent = await client.post(f"/conversations/{conversation}/messages", json={"sender": ids[0], "body": "hi"})
    assert sent.status_code == 202, sent.text

    # No saga runs: the message waits, and past the alert it is reported.
    await eventually(lambda: stalls(client), (503, [], 1), timeout=30)
    assert "eventline_saga_oldest_pending_seconds" in (await client.get("/metrics")).text

    saga = Process(ns, "saga").start()
    try:
        await eventually(lambda: stalls(client), (200, [], 0), timeout=60)
    finally:
        saga.stop()


async def test_the_processors_view_says_who_owns_each_partition_and_when_it_last_committed(
    client: httpx.AsyncClient,
) -> None:
    opened = await client.post("/accounts", json={"owner": "Counted", "currency": "EUR"})
    account = opened.json()["aggregate_id"]
    for _ in range(3):
        assert (await client.post(f"/accounts/{account}/deposits", json={"amount": 1})).status_code == 200
    view = (await client.get("/processors")).json()
    ours = next(p for p in view["partitions"] if p["partition"] == partition_for(account, len(view["partitions"])))
    assert view["group_state"] == "Stable" and len(view["members"]) == 1
    assert ours["owner"] == view["members"][0] and ours["owner"].startswith("processor-")
    assert ours["lag"] == 0 and ours["batches"] >= 4  # the opening and three deposits, a batch each at least
    assert 0 <= ours["last_commit_age_s"] < 30
