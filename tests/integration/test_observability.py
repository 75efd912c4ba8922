"""Metrics, AsyncAPI, event schemas, and correlation ids carried from HTTP into the logs of other processes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import jsonschema
import orjson
import pytest

from app.config import Settings
from app.domain.registry import AGGREGATES
from app.eventstore.processor import run_processor
from projections.projector import run_projector
from tests.support import Process, api_client, fresh_namespace, read_events
from tests.waiting import eventually


@pytest.fixture(scope="module")
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings, own_database=True)


@pytest.fixture(scope="module")
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as http:
        yield http


async def test_metrics_count_commands_and_report_projection_lag(client: httpx.AsyncClient) -> None:
    opened = await client.post("/accounts", json={"owner": "Metric", "currency": "EUR"})
    assert opened.status_code == 201
    text = (await client.get("/metrics")).text
    assert 'eventline_commands_total{outcome="succeeded",type="OpenAccount"}' in text
    assert "eventline_command_seconds_bucket" in text
    assert 'eventline_events_appended_total{aggregate_type="Account"}' in text
    assert 'eventline_projection_lag{partition="0",projection="accounts",topic="events"}' in text
    assert "eventline_saga_pending_messages" in text


async def test_the_asyncapi_document_describes_every_event_and_real_events_match_it(
    client: httpx.AsyncClient, ns: Settings
) -> None:
    document = (await client.get("/asyncapi.json")).json()
    assert document["asyncapi"] == "3.0.0"
    assert document["channels"]["events"]["address"] == ns.topic("events")
    names = {name for kind in AGGREGATES.values() for name in kind.events}
    assert names <= set(document["components"]["messages"])
    await client.post("/accounts", json={"owner": "Schema", "currency": "EUR"})
    events = await read_events(ns)
    assert events
    for event in events:
        schema = document["components"]["messages"][event.type]["payload"]
        jsonschema.validate(orjson.loads(event.encode()), schema)
    by_type = (await client.get("/schemas/events")).json()
    assert set(by_type) == names and all("1" in versions for versions in by_type.values())


async def test_a_correlation_id_travels_from_the_request_into_events_and_another_process_logs(
    client: httpx.AsyncClient, ns: Settings, settings: Settings
) -> None:
    # A processor of its own, in another namespace, logging at DEBUG in JSON.
    other = await fresh_namespace(settings, log_level="DEBUG", log_format="json")
    processor = Process(other, "processor").start()
    try:
        async with api_client(other) as http:
            correlation = f"trace-{uuid.uuid4()}"
            opened = await http.post(
                "/accounts",
                json={"owner": "Traced", "currency": "EUR"},
                headers={"X-Correlation-ID": correlation},
                timeout=60,
            )
            assert opened.headers["x-correlation-id"] == correlation
            assert opened.status_code in (201, 202)

        async def logged() -> bool:
            lines = [orjson.loads(line) for line in processor.log().splitlines() if line.startswith("{")]
            return any(line.get("correlation_id") == correlation for line in lines)

        await eventually(logged, True, timeout=30)
        events = [e for e in await read_events(other) if e.correlation_id == correlation]
        assert [e.type for e in events] == ["AccountOpened"]
    finally:
        processor.stop()
