"""The audit trail: every event names the principal that caused it, and no client can set it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import httpx
import pytest

from app.api_keys import hash_key
from app.config import Settings
from app.db import create_engine
from app.eventstore.processor import run_processor
from app.sagas.payment import run_saga
from projections.projector import run_projector
from projections.rebuild import rebuild
from projections.registry import PROJECTIONS
from tests.support import api_client, fresh_namespace, read_events
from tests.waiting import eventually

KEYS = {"billing": "key-of-billing", "ops": "key-of-ops"}


@pytest.fixture(scope="module")
async def ns(settings: Settings) -> Settings:
    configured = f"billing:writer:{hash_key(KEYS['billing'])},ops:admin:{hash_key(KEYS['ops'])}"
    return await fresh_namespace(settings, own_database=True, api_keys=configured, consistency_timeout_s=15)


@pytest.fixture(scope="module")
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    workers = {"processor": run_processor, "projector": run_projector, "saga": run_saga}
    async with api_client(ns, workers=workers) as http:
        yield http


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


async def principal_of(client: httpx.AsyncClient, event_id: str) -> str | None:
    shown = await client.get(f"/events/{event_id}", headers=as_("ops"))
    return str(shown.json()["principal"]) if shown.status_code == 200 else None


async def test_each_event_names_who_caused_it_and_a_rebuild_keeps_it(ns: Settings, client: httpx.AsyncClient) -> None:
    opened = await client.post("/accounts", json={"owner": "Ada", "currency": "EUR"}, headers=as_("billing"))
    assert opened.status_code == 201, opened.text
    ada = opened.json()["aggregate_id"]
    deposited = await client.post(f"/accounts/{ada}/deposits", json={"amount": 50}, headers=as_("ops"))
    assert deposited.status_code == 200, deposited.text
    bob = (await client.post("/accounts", json={"owner": "Bob", "currency": "EUR"}, headers=as_("ops"))).json()
    started = await client.post(
        "/conversations", json={"participants": [ada, bob["aggregate_id"]]}, headers=as_("billing")
    )
    assert started.status_code == 201, started.text
    conversation = started.json()["conversation_id"]
    sent = await client.post(
        f"/conversations/{conversation}/messages", json={"sender": ada, "body": "hi"}, headers=as_("billing")
    )
    assert sent.status_code == 202, sent.text

    async def charged() -> bool:
        return any(e.type == "AccountCharged" for e in await read_events(ns))

    await eventually(charged, True, timeout=60)
    by_type = {e.type: e for e in await read_events(ns) if e.aggregate_id in (ada, conversation)}
    expected = {
        "AccountOpened": "billing",  # what the key called billing asked for
        "FundsDeposited": "ops",
        "ConversationStarted": "billing",
        "AccountCharged": "saga",  # the payment saga's own step
    }
    assert {kind: by_type[kind].principal for kind in expected} == expected
    for kind, principal in expected.items():  # GET /events/{id} shows it, from the read model
        await eventually(partial(principal_of, client, by_type[kind].event_id), principal, timeout=30)

    engine = create_engine(ns)
    try:
        report = await rebuild(ns, engine, PROJECTIONS["event_log"], verify=True)
    finally:
        await engine.dispose()
    assert report.swapped and not report.differs
    for kind, principal in expected.items():
        assert await principal_of(client, by_type[kind].event_id) == principal


async def test_no_request_can_name_its_own_principal(ns: Settings, client: httpx.AsyncClient) -> None:
    forged = await client.post(
        "/accounts", json={"owner": "Eve", "currency": "EUR", "principal": "ops"}, headers=as_("billing")
    )
    assert forged.status_code == 422  # an unknown field: the request is refused, nothing is written
    spoofed = await client.post(
        "/accounts",
        json={"owner": "Eve", "currency": "EUR"},
        headers={**as_("billing"), "X-Principal": "ops", "X-Forwarded-User": "ops"},
    )
    assert spoofed.status_code == 201
    [event] = [e for e in await read_events(ns) if e.aggregate_id == spoofed.json()["aggregate_id"]]
    assert event.principal == "billing"
