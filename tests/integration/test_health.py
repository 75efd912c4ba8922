"""Readiness follows the real dependencies: stop them and it says so, quickly (and so do streams)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.support import kafka_pid, paused
from tests.waiting import eventually

READY_BUDGET_S = 2.0
FLOOD, FLOOD_ROUNDS = 300, 10


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://eventline") as http:
            yield http


async def timed_ready(client: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.get("/health/ready")
    return response, time.monotonic() - started


async def test_liveness_is_always_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200


async def test_ready_when_both_dependencies_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert (response.status_code, response.json()) == (200, {"kafka": "ok", "postgres": "ok"})


async def test_a_flood_of_readiness_probes_never_starves_queries(settings: Settings) -> None:
    """300 probes at once, ten rounds each, while queries run: every probe and every query answers 200.

    The query pool is kept small (four connections) so that probes taking pooled
    connections would show at once; the probe's own connection leaves the pool to the queries."""
    app = create_app(settings.model_copy(update={"database_pool_size": 2}))
    probes: Counter[int] = Counter()
    queries: Counter[int] = Counter()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://eventline", timeout=30) as client:

            async def probe_rounds() -> None:
                for _ in range(FLOOD_ROUNDS):
                    probes[(await client.get("/health/ready")).status_code] += 1

            async def query_until(flood: asyncio.Future[list[None]]) -> None:
                while not flood.done() or not queries:
                    queries[(await client.get("/events", params={"limit": 5})).status_code] += 1

            async with asyncio.timeout(120):  # a deadline for the whole flood, not a pause
                flood = asyncio.gather(*(probe_rounds() for _ in range(FLOOD)))
                await asyncio.gather(flood, *(query_until(flood) for _ in range(4)))
    assert (dict(probes), set(queries)) == ({200: FLOOD * FLOOD_ROUNDS}, {200}), (probes, queries)


async def test_a_hung_kafka_is_reported_within_the_budget(
    client: httpx.AsyncClient, infra: Callable[..., None]
) -> None:
    with paused(kafka_pid()):
        response, elapsed = await timed_ready(client)
    assert response.status_code == 503
    assert response.json() == {"kafka": "timeout", "postgres": "ok"}
    assert elapsed < READY_BUDGET_S
    await eventually(lambda: ready_status(client), 200)


async def test_stopped_kafka_then_recovery_without_restarting_the_api(
    client: httpx.AsyncClient, infra: Callable[..., None]
) -> None:
    infra("down", "kafka")
    response, elapsed = await timed_ready(client)
    assert response.status_code == 503
    assert response.json()["kafka"] != "ok"
    assert elapsed < READY_BUDGET_S
    # A notification stream is refused the same way: it names the dependency, not its address.
    started = time.monotonic()
    async with asyncio.timeout(10):  # a stream opened instead would never end
        stream = await client.get("/notifications/stream")
    assert (stream.status_code, stream.headers["Retry-After"]) == (503, "1"), stream.text
    assert stream.json()["type"].endswith("/kafka-unavailable") and "127.0.0.1" not in stream.text
    assert time.monotonic() - started < READY_BUDGET_S
    infra("up", "kafka")
    await eventually(lambda: ready_status(client), 200, timeout=60)


async def test_stopped_postgres_then_recovery_without_restarting_the_api(
    client: httpx.AsyncClient, infra: Callable[..., None]
) -> None:
    infra("down", "postgres")
    response, elapsed = await timed_ready(client)
    assert response.status_code == 503
    assert response.json() == {"kafka": "ok", "postgres": "down"}
    assert elapsed < READY_BUDGET_S
    infra("up", "postgres")
    await eventually(lambda: ready_status(client), 200, timeout=30)


async def ready_status(client: httpx.AsyncClient) -> int:
    return (await client.get("/health/ready")).status_code
