"""Deciding a command whose personal fields are sealed: opened for the domain, sealed again in the
events and in the aggregate's state (so its snapshot holds no plaintext), refused for a forgotten subject.

Pure: the keys are an in-memory stand-in for the key store (tested itself on a real broker)."""

from __future__ import annotations

import asyncio
from typing import cast

from app.domain.accounts import AccountOpened, OpenAccount
from app.eventstore.decision import Aggregate, Decision, decide_command
from app.eventstore.envelope import CommandEnvelope
from app.privacy.key_store import KeyStore
from app.privacy.personal_data import WriterKeys, open_data, seal_data
from app.privacy.sealing import is_sealed, new_data_key
from tests.unit.test_decision import ACCOUNT_ID, NOW, command, event_ids
from tests.unit.test_personal_data import Keys


def sealed_open_account(keys: Keys, owner: str = "Ada Lovelace") -> CommandEnvelope:
    data = {"owner": owner, "currency": "EUR"}
    sealed = asyncio.run(seal_data(OpenAccount, data, aggregate_id=ACCOUNT_ID, sealing_key=keys.sealing_key))
    return command("OpenAccount", sealed, command_id="cmd-1")


def decide(keys: Keys, envelope: CommandEnvelope, aggregate: Aggregate | None = None) -> Decision:
    writer = WriterKeys(cast(KeyStore, keys))
    asyncio.run(writer.prepare([envelope]))
    return decide_command(aggregate, envelope, now=NOW, new_event_id=event_ids(), personal=writer)


def test_a_sealed_command_is_decided_on_its_plaintext_and_its_events_and_state_are_sealed_again() -> None:
    keys = Keys()
    decision = decide(keys, sealed_open_account(keys))
    assert decision.result.outcome == "succeeded"
    [event] = decision.events
    assert is_sealed(event.data["owner"]) and event.data["currency"] == "EUR"
    assert open_data(AccountOpened, event.data, aggregate_id=ACCOUNT_ID, keys=keys)["owner"] == "Ada Lovelace"
    snapshot = decision.aggregate.to_record().encode() if decision.aggregate else b""
    assert b"Ada" not in snapshot and b"sealed:v1:" in snapshot


def test_a_command_stored_in_plain_is_sealed_on_its_way_into_the_events() -> None:
    keys = Keys()
    plain = command("OpenAccount", {"owner": "Grace Hopper", "currency": "USD"}, command_id="cmd-2")
    decision = decide(keys, plain)
    assert decision.result.outcome == "succeeded" and is_sealed(decision.events[0].data["owner"])
    assert keys.keys_of(ACCOUNT_ID)  # the processor created the subject's key


def test_a_command_for_a_forgotten_subject_is_refused() -> None:
    keys = Keys()
    envelope = sealed_open_account(keys)
    keys.forgotten.add(ACCOUNT_ID)
    decision = decide(keys, envelope)
    assert (decision.result.outcome, (decision.result.error or {}).get("code")) == ("rejected", "subject-forgotten")
    assert decision.events == []


def test_a_value_none_of_the_subjects_keys_opens_is_refused_not_decided() -> None:
    keys = Keys()
    envelope = sealed_open_account(keys)
    keys.keys[ACCOUNT_ID] = [new_data_key()]  # not the key it was sealed with
    decision = decide(keys, envelope)
    assert (decision.result.error or {}).get("code") == "personal-data-unreadable"
