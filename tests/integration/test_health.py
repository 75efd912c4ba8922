"""Readiness follows the real dependencies: stop them and it says so, quickly (and so do streams)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import ROOT
from tests.waiting import eventually

READY_BUDGET_S = 2.0


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


def kafka_pid() -> int:
    return int((ROOT / ".local/kafka/kafka.pid").read_text())


async def test_liveness_is_always_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200


async def test_ready_when_both_dependencies_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert (response.status_code, response.json()) == (200, {"kafka": "ok", "postgres": "ok"})


async def test_a_hung_kafka_is_reported_within_the_budget(
    client: httpx.AsyncClient, infra: Callable[..., None]
) -> None:
    pid = kafka_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        response, elapsed = await timed_ready(client)
    finally:
        os.kill(pid, signal.SIGCONT)
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
