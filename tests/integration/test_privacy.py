"""Personal fields on the real write path: sealed before any topic, opened in the read models and
queries, refused for a forgotten subject, and no process starts with keys that cannot open them."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from app.eventstore.processor import run_processor
from app.main import create_app
from app.privacy.key_store import KeyEncryptionKeyMismatch
from projections.projector import run_projector
from tests.support import api_client, broker_files_holding, end_offsets, fresh_namespace, read_events
from tests.waiting import eventually


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    assert settings.privacy_keks, "the test session seals personal fields (tests/conftest.py)"
    return await fresh_namespace(settings, own_database=True, consistency_timeout_s=15)


@pytest.fixture
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as http:
        yield http


def marker(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:12]}"


async def test_personal_fields_are_sealed_in_every_topic_and_opened_in_the_read_models(
    ns: Settings, client: httpx.AsyncClient
) -> None:
    owner, reference, withdrawn_for = marker("Ada Lovelace"), marker("rent for flat 3"), marker("groceries")
    opened = await client.post("/accounts", json={"owner": owner, "currency": "EUR"})
    assert opened.status_code == 201, opened.text
    account_id = opened.json()["aggregate_id"]
    deposit = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 40, "reference": reference})
    assert deposit.status_code == 200, deposit.text
    withdrawal = await client.post(
        f"/accounts/{account_id}/withdrawals", json={"amount": 15, "reference": withdrawn_for}
    )
    assert withdrawal.status_code == 200, withdrawal.text
    token = {"X-Consistent-With": withdrawal.json()["position"]}

    account = (await client.get(f"/accounts/{account_id}", headers=token)).json()
    assert (account["owner"], account["balance"]) == (owner, 25)
    ledger = (await client.get(f"/accounts/{account_id}/transactions", headers=token)).json()["items"]
    assert sorted(entry.get("reference") for entry in ledger) == sorted([reference, withdrawn_for])
    logged = (await client.get("/events", params={"aggregate_id": account_id}, headers=token)).json()["items"]
    assert [e["data"].get("owner") or e["data"].get("reference") for e in logged] == [owner, reference, withdrawn_for]

    # Stored sealed: every file the broker holds for the namespace, not just what a consumer is given.
    events = [e for e in await read_events(ns) if e.aggregate_id == account_id]
    assert len(events) == 3
    assert all(str(e.data.get("owner") or e.data.get("reference")).startswith("sealed:v1:") for e in events)
    for plain in (owner, reference, withdrawn_for):
        assert await asyncio.to_thread(broker_files_holding, ns, plain.encode()) == [], plain


async def test_a_message_body_is_sealed_for_its_sender_and_shown_in_the_message(
    ns: Settings, client: httpx.AsyncClient
) -> None:
    body, title = marker("see you at the station"), marker("Plans")
    accounts = []
    for name in ("Sender", "Recipient"):
        opened = await client.post("/accounts", json={"owner": name, "currency": "EUR"})
        accounts.append(opened.json()["aggregate_id"])
    sender, recipient = accounts
    opened_token = opened.json()["position"]
    started = await client.post(
        "/conversations",
        json={"participants": [sender, recipient], "title": title},
        headers={"X-Consistent-With": opened_token},
    )
    assert started.status_code == 201, started.text
    conversation = started.json()["conversation_id"]
    await eventually(lambda: status(client, f"/conversations/{conversation}/messages", started.json()["position"]), 200)
    sent = await client.post(f"/conversations/{conversation}/messages", json={"sender": sender, "body": body})
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["message_id"]
    shown = await eventually(lambda: body_of(client, message_id), body)
    assert shown == body
    for plain in (body, title):
        assert await asyncio.to_thread(broker_files_holding, ns, plain.encode()) == [], plain


async def status(client: httpx.AsyncClient, path: str, token: str) -> int:
    return (await client.get(path, headers={"X-Consistent-With": token})).status_code


async def body_of(client: httpx.AsyncClient, message_id: str) -> str | None:
    answer = await client.get(f"/messages/{message_id}")
    return answer.json().get("body") if answer.status_code == 200 else None


async def test_a_command_with_personal_data_of_a_forgotten_subject_is_a_410_and_stores_nothing(
    ns: Settings, client: httpx.AsyncClient
) -> None:
    opened = await client.post("/accounts", json={"owner": "Soon Gone", "currency": "EUR"})
    account_id = opened.json()["aggregate_id"]
    assert (await client.delete(f"/subjects/{account_id}")).status_code == 200

    async def attempt() -> int:
        # A wrong If-Match: until the API has read the forget, the processor refuses it (412, checked before
        # anything else), changing nothing; then the API refuses it before storing anything (410).
        answer = await client.post(
            f"/accounts/{account_id}/deposits", json={"amount": 1, "reference": "after"}, headers={"If-Match": '"9"'}
        )
        return answer.status_code

    await eventually(attempt, 410)
    before = await end_offsets(ns)
    refused = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 1, "reference": "after"})
    assert (refused.status_code, refused.headers["content-type"]) == (410, "application/problem+json"), refused.text
    assert refused.json()["type"].endswith("/subject-forgotten")
    assert await end_offsets(ns) == before  # refused at the edge: no command was stored
    assert (await client.get(f"/accounts/{account_id}")).json()["balance"] == 0


async def test_no_process_starts_with_a_key_encryption_key_that_cannot_open_the_stored_keys(
    ns: Settings, client: httpx.AsyncClient
) -> None:
    opened = await client.post("/accounts", json={"owner": "Keeps a key", "currency": "EUR"})
    assert opened.status_code == 201
    kek_id = ns.privacy_keks.split(":", 1)[0]
    wrong = ns.model_copy(update={"privacy_keks": f"{kek_id}:{base64.b64encode(os.urandom(32)).decode()}"})
    before = await end_offsets(ns, "subject-keys")
    app = create_app(wrong)
    with pytest.raises(KeyEncryptionKeyMismatch, match="is not the one"):
        async with app.router.lifespan_context(app):
            pass
    with pytest.raises(KeyEncryptionKeyMismatch, match="is not the one"):
        await run_processor(wrong)
    with pytest.raises(KeyEncryptionKeyMismatch, match="is not the one"):
        await run_projector(wrong)
    malformed = ns.model_copy(update={"privacy_keks": f"{kek_id}:not-a-key"})
    with pytest.raises(KeyEncryptionKeyMismatch, match="EVENTLINE_PRIVACY_KEKS"):
        await run_processor(malformed)
    assert await end_offsets(ns, "subject-keys") == before
