"""Event notifications over Server-Sent Events: in order, and resumable without loss or repeat."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest

from app.config import Settings
from app.eventstore.processor import run_processor
from tests.support import Process, api_client, free_port, fresh_namespace, read_events
from tests.waiting import eventually


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings, api_port=free_port(), notification_heartbeat_s=1)


@pytest.fixture
def server(ns: Settings) -> Iterator[str]:
    process = Process(ns, "api").start()
    yield f"http://127.0.0.1:{ns.api_port}"
    process.stop()


@pytest.fixture
async def writer(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor}) as client:
        yield client


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str, dict[str, object]]]:
    """(id, event, data) for each SSE event; comments (heartbeats) and retry lines are skipped."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield fields.get("id", ""), fields.get("event", ""), orjson.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


async def test_a_resumed_stream_misses_nothing_and_repeats_nothing(
    server: str, writer: httpx.AsyncClient, ns: Settings
) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:

        async def up() -> int:
            return (await http.get("/health/ready")).status_code

        await eventually(up, 200, timeout=60)
        seen: list[dict[str, object]] = []
        async with http.stream("GET", "/notifications/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            accounts = []
            for _ in range(3):
                opened = await writer.post("/accounts", json={"owner": "Listener", "currency": "EUR"})
                accounts.append(opened.json()["aggregate_id"])
            for n in range(30):
                await writer.post(f"/accounts/{accounts[n % 3]}/deposits", json={"amount": 1 + n})
            last_id = ""
            async for event_id, kind, data in sse_events(stream):
                assert kind == data["type"]
                seen.append(data)
                last_id = event_id
                if len(seen) == 15:
                    break  # the client goes away mid-stream
        async with http.stream("GET", "/notifications/stream", headers={"Last-Event-ID": last_id}) as stream:
            async for _, _, data in sse_events(stream):
                seen.append(data)
                if len(seen) == 33:
                    break
    events = await read_events(ns)
    assert sorted(str(n["event_id"]) for n in seen) == sorted(e.event_id for e in events)
    for account_id in accounts:
        versions = [n["version"] for n in seen if n["aggregate_id"] == account_id]
        assert versions == list(range(1, 12))
    one = seen[0]
    assert one["href"] == f"/events/{one['event_id']}"


async def test_an_idle_stream_sends_heartbeats(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:

        async def up() -> int:
            return (await http.get("/health/ready")).status_code

        await eventually(up, 200, timeout=60)
        async with http.stream("GET", "/notifications/stream") as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == "retry: 1000"
            assert await anext(lines) == ""
            assert await anext(lines) == ": heartbeat"
