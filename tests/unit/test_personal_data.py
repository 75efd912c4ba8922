"""Sealing and opening a command's or event's data, each personal field under its own subject's keys."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from app.domain.accounts import AccountOpened, Deposit, FundsDeposited
from app.domain.conversations import ConversationStarted
from app.domain.messages import MessageSubmitted, SubmitMessage
from app.privacy.personal_data import KeyNotKnownYet, fields_by_subject, open_data, seal_data
from app.privacy.sealing import ERASED, SealBroken, is_sealed, new_data_key

ACCOUNT, SENDER, MESSAGE = "acc-1", "acc-2", "msg-1"


@dataclass
class Keys:
    """An in-memory stand-in for the key store: the key store itself is tested on a real broker."""

    keys: dict[str, list[bytes]] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)

    async def sealing_key(self, subject_id: str) -> bytes:
        return self.keys.setdefault(subject_id, [new_data_key()])[0]

    def keys_of(self, subject_id: str) -> list[bytes]:
        return [] if subject_id in self.forgotten else self.keys.get(subject_id, [])

    def is_forgotten(self, subject_id: str) -> bool:
        return subject_id in self.forgotten

    async def caught_up(self) -> None:
        return None  # nothing to read: every key is in the dict already


def sealed(model: type, data: Mapping[str, object], aggregate_id: str, keys: Keys) -> dict[str, object]:
    return asyncio.run(seal_data(model, data, aggregate_id=aggregate_id, sealing_key=keys.sealing_key))


MESSAGE_DATA = {
    "conversation_id": "conv-1",
    "sender": SENDER,
    "recipients": [ACCOUNT],
    "body": "see you at 8",
    "price": 7,
    "currency": "EUR",
}


def test_every_personal_field_is_sealed_and_every_other_field_is_untouched() -> None:
    keys = Keys()
    data = {"owner": "Ada Lovelace", "currency": "EUR", "holder": "user-7"}
    stored = sealed(AccountOpened, data, ACCOUNT, keys)
    assert is_sealed(stored["owner"]) and is_sealed(stored["holder"]) and stored["currency"] == "EUR"
    assert "Ada" not in str(stored) and "user-7" not in str(stored)
    assert open_data(AccountOpened, stored, aggregate_id=ACCOUNT, keys=keys) == data


def test_a_message_body_is_sealed_for_its_sender_not_for_the_message() -> None:
    keys = Keys()
    stored = sealed(MessageSubmitted, MESSAGE_DATA, MESSAGE, keys)
    assert set(keys.keys) == {SENDER}
    assert fields_by_subject(MessageSubmitted, stored, MESSAGE) == {SENDER: ["body"]}
    assert open_data(MessageSubmitted, stored, aggregate_id=MESSAGE, keys=keys)["body"] == "see you at 8"


def test_a_forgotten_subjects_fields_are_erased_and_the_rest_stays() -> None:
    keys = Keys()
    stored = sealed(MessageSubmitted, MESSAGE_DATA, MESSAGE, keys)
    keys.forgotten.add(SENDER)
    shown = open_data(MessageSubmitted, stored, aggregate_id=MESSAGE, keys=keys)
    assert shown == {**MESSAGE_DATA, "body": ERASED}


def test_a_recipient_forgotten_does_not_erase_what_the_sender_wrote() -> None:
    keys = Keys()
    stored = sealed(MessageSubmitted, MESSAGE_DATA, MESSAGE, keys)
    keys.forgotten.add(ACCOUNT)  # the recipient
    assert open_data(MessageSubmitted, stored, aggregate_id=MESSAGE, keys=keys)["body"] == "see you at 8"


def test_absent_and_empty_optional_fields_need_no_key() -> None:
    keys = Keys()
    assert sealed(FundsDeposited, {"amount": 5, "reference": None, "balance_after": 5}, ACCOUNT, keys) == {
        "amount": 5,
        "reference": None,
        "balance_after": 5,
    }
    assert sealed(ConversationStarted, {"participants": [ACCOUNT, SENDER]}, "conv-1", keys)["participants"]
    assert keys.keys == {}


def test_a_value_sealed_under_a_key_not_read_yet_asks_for_it_and_one_no_key_opens_is_refused() -> None:
    writer, reader = Keys(), Keys()
    stored = sealed(Deposit, {"type": "Deposit", "amount": 1, "reference": "rent"}, ACCOUNT, writer)
    with pytest.raises(KeyNotKnownYet):
        open_data(Deposit, stored, aggregate_id=ACCOUNT, keys=reader)
    reader.keys[ACCOUNT] = [new_data_key()]  # another key of the same subject: it does not open this one
    with pytest.raises(SealBroken):
        open_data(Deposit, stored, aggregate_id=ACCOUNT, keys=reader)
    reader.keys[ACCOUNT].append(writer.keys[ACCOUNT][0])  # any of the subject's keys will do
    assert open_data(Deposit, stored, aggregate_id=ACCOUNT, keys=reader)["reference"] == "rent"


def test_plain_values_from_before_sealing_are_kept_unless_their_subject_is_forgotten() -> None:
    keys = Keys()
    old = {"type": "SubmitMessage", **{k: v for k, v in MESSAGE_DATA.items() if k != "price"}, "tariff": 1}
    assert open_data(SubmitMessage, old, aggregate_id=MESSAGE, keys=keys) == old
    keys.forgotten.add(SENDER)
    assert open_data(SubmitMessage, old, aggregate_id=MESSAGE, keys=keys)["body"] == ERASED
