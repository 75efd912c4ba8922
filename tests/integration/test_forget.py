"""Forgetting a data subject on a real broker and database: `DELETE /subjects/{id}` and `eventline forget`.

What must hold afterwards (docs/privacy.md): the subject's values read `[erased]` in every read model,
query and rebuild, other people's values and every non-personal fact stay, the subject takes no more
commands, the forget is audited without personal data, and neither the plaintext nor the subject's
data key is left anywhere: not in any file the broker holds for the namespace, not in any table.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.db import create_engine
from app.eventstore.processor import run_processor
from app.privacy.key_encryption import KeyEncryptionKeys
from app.privacy.key_store import KeyStore
from app.privacy.sealing import ERASED
from projections import failures
from projections.base import Message
from projections.projector import run_projector
from projections.rebuild import rebuild_together
from projections.registry import PROJECTIONS
from tests.conftest import ROOT
from tests.support import (
    api_client,
    broker_files_holding,
    environment,
    fresh_namespace,
    read_events,
    read_opened_events,
    tables_holding,
)
from tests.waiting import eventually

# Small roll and compaction settings for the key topic, standing in for the deployment's hour each.
FAST_COMPACTION = {"privacy_key_segment_ms": 200, "privacy_key_compaction_lag_ms": 200}


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    assert settings.privacy_keks, "the test session seals personal fields (tests/conftest.py)"
    return await fresh_namespace(settings, own_database=True, consistency_timeout_s=15, **FAST_COMPACTION)


@pytest.fixture
async def client(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as http:
        yield http


def marker(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:12]}"


async def open_account(client: httpx.AsyncClient, owner: str, reference: str) -> tuple[str, str]:
    opened = await client.post("/accounts", json={"owner": owner, "currency": "EUR"})
    assert opened.status_code == 201, opened.text
    account_id = opened.json()["aggregate_id"]
    deposit = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 500, "reference": reference})
    assert deposit.status_code == 200, deposit.text
    return account_id, deposit.json()["position"]


async def send_message(client: httpx.AsyncClient, conversation: str, sender: str, body: str) -> str:
    sent = await client.post(f"/conversations/{conversation}/messages", json={"sender": sender, "body": body})
    assert sent.status_code == 202, sent.text
    return str(sent.json()["message_id"])


async def read(client: httpx.AsyncClient, path: str, token: str | None = None) -> Any:
    answer = await client.get(path, headers={"X-Consistent-With": token} if token else {})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def wrapped_keys_of(ns: Settings, subject_id: str) -> list[bytes]:
    """The subject's data keys as the broker stores them (wrapped): what compaction must remove."""
    store = KeyStore(ns, KeyEncryptionKeys.parse(ns.privacy_keks), None)
    await store.start()
    try:
        return [wrapped.encode() for wrapped in store.wrapped[subject_id].values()]
    finally:
        await store.stop()


async def test_forgetting_an_account_erases_it_everywhere_and_keeps_every_fact(
    ns: Settings, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ada_owner, ada_reference, ada_body = marker("Ada Lovelace"), marker("rent"), marker("from Ada")
    bob_owner, bob_reference, bob_body = marker("Bob Babbage"), marker("salary"), marker("from Bob")
    ada, _ = await open_account(client, ada_owner, ada_reference)
    bob, token = await open_account(client, bob_owner, bob_reference)
    started = await client.post(
        "/conversations", json={"participants": [ada, bob], "title": "Plans"}, headers={"X-Consistent-With": token}
    )
    assert started.status_code == 201, started.text
    conversation = started.json()["conversation_id"]
    from_ada = await send_message(client, conversation, ada, ada_body)
    from_bob = await send_message(client, conversation, bob, bob_body)
    await eventually(lambda: body_of(client, from_ada), ada_body)
    await eventually(lambda: body_of(client, from_bob), bob_body)
    ada_keys = await wrapped_keys_of(ns, ada)
    assert ada_keys and all(broker_files_holding(ns, key, "subject-keys") for key in ada_keys)
    assert await tables_holding(ns, ada_owner), "the scan finds a value that is there"

    forgotten = await client.delete(f"/subjects/{ada}")
    assert forgotten.status_code == 200, forgotten.text
    token = forgotten.json()["position"]

    # Every read model shows Ada's values erased; Bob's and every amount stay.
    account = await read(client, f"/accounts/{ada}", token)
    assert (account["owner"], account["balance"]) == (ERASED, 500)
    assert (await read(client, f"/accounts/{bob}", token))["owner"] == bob_owner
    ledger = (await read(client, f"/accounts/{ada}/transactions", token))["items"]
    assert [(e["amount"], e.get("reference")) for e in ledger] == [(500, ERASED)]
    await eventually(lambda: body_of(client, from_ada), ERASED)
    assert await body_of(client, from_bob) == bob_body
    logged = (await read(client, f"/events?aggregate_id={ada}", token))["items"]
    assert [e["type"] for e in logged] == ["AccountOpened", "FundsDeposited", "SubjectForgotten"]
    assert (logged[0]["data"]["owner"], logged[1]["data"]["reference"]) == (ERASED, ERASED)
    # Audited: who asked and when, nothing personal.
    audit = logged[2]
    assert audit["data"] == {"requested_by": "operator"} and audit["occurred_at"] and audit["principal"]

    # Idempotent: forgetting again decides nothing new.
    again = await client.delete(f"/subjects/{ada}")
    assert (again.status_code, again.json()["version"]) == (200, forgotten.json()["version"])

    # Nothing new is taken for Ada: refused at the edge (personal data) and by the domain (none).
    for body in ({"amount": 1, "reference": "after"}, {"amount": 1}):
        refused = await client.post(f"/accounts/{ada}/deposits", json=body)
        assert (refused.status_code, refused.headers["content-type"]) == (410, "application/problem+json")
        assert refused.json()["type"].endswith("/subject-forgotten"), refused.text
    late = await client.post(f"/conversations/{conversation}/messages", json={"sender": ada, "body": "late"})
    assert late.status_code == 410, late.text

    # No plaintext of Ada in any table, and the broker's disk loses her key within the bound.
    await eventually(lambda: projections_caught_up(client), True)
    for plain in (ada_owner, ada_reference, ada_body):
        assert await tables_holding(ns, plain) == [], plain
        assert await asyncio.to_thread(broker_files_holding, ns, plain.encode()) == [], plain
    assert await tables_holding(ns, bob_body), "the other user's data is kept"
    started_waiting = time.monotonic()
    for key in ada_keys:
        await eventually(partial(asyncio.to_thread, broker_files_holding, ns, key), [], timeout=60, interval=0.5)
    print(f"Ada's key left the broker's files {time.monotonic() - started_waiting:.1f} s after the check began")

    # A rebuild of every read model from offset 0 builds the same rows.
    engine = create_engine(ns)
    try:
        reports = await rebuild_together(ns, engine, list(PROJECTIONS.values()), verify=True)
    finally:
        await engine.dispose()
    assert [(r.projection, r.differs) for r in reports] == [(r.projection, False) for r in reports]
    account = await read(client, f"/accounts/{ada}")
    assert (account["owner"], account["balance"]) == (ERASED, 500)
    # Nothing personal was logged on the way, by any of the processes this test ran.
    assert caplog.records, "the log was captured"
    for plain in (ada_owner, ada_reference, ada_body, bob_owner, bob_reference, bob_body):
        assert plain not in caplog.text, plain


async def body_of(client: httpx.AsyncClient, message_id: str) -> str | None:
    answer = await client.get(f"/messages/{message_id}")
    return answer.json().get("body") if answer.status_code == 200 else None


async def projections_caught_up(client: httpx.AsyncClient) -> bool:
    return all(view["lag"] == 0 for view in (await client.get("/projections")).json())


async def test_forgetting_a_conversation_erases_its_title_and_leaves_its_messages(
    ns: Settings, client: httpx.AsyncClient
) -> None:
    title, body = marker("Surprise party"), marker("bring cake")
    ada, _ = await open_account(client, "Ada", "a")
    bob, token = await open_account(client, "Bob", "b")
    started = await client.post(
        "/conversations", json={"participants": [ada, bob], "title": title}, headers={"X-Consistent-With": token}
    )
    conversation = started.json()["conversation_id"]
    message = await send_message(client, conversation, ada, body)
    await eventually(lambda: body_of(client, message), body)

    forgotten = await client.delete(f"/subjects/{conversation}")
    assert forgotten.status_code == 200, forgotten.text
    await eventually(lambda: projections_caught_up(client), True)

    assert await tables_holding(ns, title) == []
    assert await body_of(client, message) == body  # the body is its sender's, not the conversation's
    unknown = await client.delete(f"/subjects/{uuid.uuid4()}")
    assert (unknown.status_code, unknown.headers["content-type"]) == (404, "application/problem+json")


async def test_a_subject_forgotten_while_their_commands_are_in_flight_keeps_every_answer_true(
    ns: Settings, client: httpx.AsyncClient
) -> None:
    """Deposits race the forget: each is either decided before it (and its reference erased) or
    refused with 410; none lands after the SubjectForgotten fact, and the balance adds up."""
    ada, _ = await open_account(client, marker("Ada"), marker("first"))
    references = [marker(f"deposit {i}") for i in range(40)]

    async def deposit(reference: str) -> httpx.Response:
        return await client.post(f"/accounts/{ada}/deposits", json={"amount": 1, "reference": reference})

    async def forget_midway() -> httpx.Response:
        # Paces the race, waits for nothing: every assertion below holds whichever deposits land
        # before the forget (all, some or none), so a slower machine changes the mix, not the outcome.
        await asyncio.sleep(0.05)
        return await client.delete(f"/subjects/{ada}")

    *answers, forgotten = await asyncio.gather(*map(deposit, references), forget_midway())
    assert forgotten.status_code == 200, forgotten.text
    codes = sorted({answer.status_code for answer in answers})
    assert set(codes) <= {200, 410}, [a.text for a in answers if a.status_code not in (200, 410)]
    taken = sum(answer.status_code == 200 for answer in answers)

    events = [e for e in await read_events(ns) if e.aggregate_id == ada]
    types = [e.type for e in events]
    assert types[-1] == "SubjectForgotten" and types.count("SubjectForgotten") == 1, types
    assert types.count("FundsDeposited") == 1 + taken
    account = await read(client, f"/accounts/{ada}", forgotten.json()["position"])
    assert (account["owner"], account["balance"]) == (ERASED, 500 + taken)
    await eventually(lambda: projections_caught_up(client), True)
    for reference in references:
        assert await tables_holding(ns, reference) == [], reference


async def test_eventline_forget_forgets_from_the_command_line(ns: Settings, client: httpx.AsyncClient) -> None:
    owner = marker("Cli User")
    account, token = await open_account(client, owner, marker("ref"))
    await read(client, f"/accounts/{account}", token)  # in the read model the CLI looks the id up in

    forget = await asyncio.to_thread(run_cli, ns, "forget", account)
    assert forget.returncode == 0, forget.stdout
    assert f"forgotten: {account}" in forget.stdout
    again = await asyncio.to_thread(run_cli, ns, "forget", account)
    assert again.returncode == 0, again.stdout
    await eventually(lambda: owner_of(client, account), ERASED)
    logged = (await read(client, f"/events?aggregate_id={account}"))["items"]
    assert [e["principal"] for e in logged if e["type"] == "SubjectForgotten"] == ["cli"]
    unknown = await asyncio.to_thread(run_cli, ns, "forget", str(uuid.uuid4()))
    assert unknown.returncode == 1 and "no account or conversation" in unknown.stdout


async def owner_of(client: httpx.AsyncClient, account_id: str) -> str | None:
    answer = await client.get(f"/accounts/{account_id}")
    return answer.json().get("owner") if answer.status_code == 200 else None


def run_cli(ns: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = environment(ns)
    env["COLUMNS"] = "200"  # rich wraps at 80 columns without a terminal
    return subprocess.run(
        [str(ROOT / ".venv/bin/eventline"), *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_a_poison_event_kept_in_failures_is_erased_with_its_subject(
    ns: Settings, client: httpx.AsyncClient
) -> None:
    """A failure keeps the event as the projector saw it, opened; the forget reaches it too."""
    owner = marker("Poisoned Owner")
    account, _ = await open_account(client, owner, marker("ref"))
    [opened] = [e for e in await read_opened_events(ns) if e.aggregate_id == account and e.type == "AccountOpened"]
    engine = create_engine(ns)
    try:
        async with engine.begin() as db:
            message = Message("events", 0, 0, opened)
            await failures.record(db, "accounts", message, ValueError(f"cannot apply owner {owner}"), attempts=3)
    finally:
        await engine.dispose()
    assert "public.projection_failures" in await tables_holding(ns, owner)

    assert (await client.delete(f"/subjects/{account}")).status_code == 200
    await eventually(lambda: tables_holding(ns, owner), [])
