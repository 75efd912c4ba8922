"""A field is marked personal where it is declared; the marker is found by introspection and shows in the schema."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from app.domain.base import Event
from app.domain.personal import Personal, personal_fields, subject_id_of


class Opened(Event):
    owner: Annotated[str, Personal(subject="account")]
    holder: Annotated[str | None, Personal(subject="account")] = None
    nickname: Annotated[str, Field(max_length=50), Personal(subject="account")] | None = None
    currency: str


class Sent(Event):
    sender: str
    body: Annotated[str, Personal(subject="sender")]
    title: Annotated[str | None, Personal(subject="conversation")] = None
    price: int


def test_marked_fields_are_found_with_their_subject_in_declaration_order() -> None:
    assert personal_fields(Opened) == {
        "owner": Personal(subject="account"),
        "holder": Personal(subject="account"),
        "nickname": Personal(subject="account"),
    }
    assert personal_fields(Sent) == {"body": Personal(subject="sender"), "title": Personal(subject="conversation")}


def test_a_model_without_markers_has_no_personal_fields() -> None:
    class Plain(BaseModel):
        amount: int
        reference: str | None = None

    assert personal_fields(Plain) == {}


def test_the_cached_answer_cannot_be_changed_by_a_caller() -> None:
    first = personal_fields(Opened)
    with pytest.raises(TypeError):
        first["owner"] = Personal(subject="sender")  # type: ignore[index]

    assert personal_fields(Opened) == {
        "owner": Personal(subject="account"),
        "holder": Personal(subject="account"),
        "nickname": Personal(subject="account"),
    }


def test_the_json_schema_marks_a_personal_field_and_its_subject() -> None:
    properties: dict[str, dict[str, Any]] = Opened.model_json_schema()["properties"]

    assert properties["owner"]["x-personal"] is True
    assert properties["owner"]["x-subject"] == "account"
    assert (properties["holder"]["x-personal"], properties["holder"]["x-subject"]) == (True, "account")
    assert "x-personal" not in properties["currency"]


def test_the_json_schema_of_the_other_optional_spelling_marks_its_text_branch() -> None:
    nickname: dict[str, Any] = Opened.model_json_schema()["properties"]["nickname"]

    text, null = nickname["anyOf"]
    assert (text["x-personal"], text["x-subject"], text["maxLength"]) == (True, "account", 50)
    assert null == {"type": "null"}


def test_the_marker_changes_nothing_about_validation_and_dumping() -> None:
    event = Opened(owner="Ada Lovelace", currency="GBP")

    assert event.model_dump() == {"owner": "Ada Lovelace", "holder": None, "nickname": None, "currency": "GBP"}
    with pytest.raises(ValueError, match="at most 50"):
        Opened(owner="Ada", currency="GBP", nickname="x" * 51)


def test_the_marker_is_a_frozen_value() -> None:
    marker = Personal(subject="account")

    with pytest.raises(dataclasses.FrozenInstanceError):
        marker.subject = "sender"  # type: ignore[misc]
    assert marker == Personal(subject="account") and hash(marker) == hash(Personal(subject="account"))


def test_a_subject_outside_the_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown data subject 'user'"):
        Personal(subject="user")  # type: ignore[arg-type]


def test_a_sender_field_needs_a_sender_on_the_same_model() -> None:
    class Orphan(Event):
        body: Annotated[str, Personal(subject="sender")]

    with pytest.raises(TypeError, match="no 'sender' field"):
        personal_fields(Orphan)


def test_the_sender_field_cannot_be_sealed_because_it_names_the_key() -> None:
    class SelfSealed(Event):
        sender: Annotated[str, Personal(subject="sender")]
        body: Annotated[str, Personal(subject="sender")]

    with pytest.raises(TypeError, match="cannot be sealed"):
        personal_fields(SelfSealed)


def test_a_field_with_two_subjects_is_refused() -> None:
    class Torn(Event):
        sender: str
        body: Annotated[str, Personal(subject="sender"), Personal(subject="account")]

    with pytest.raises(TypeError, match="more than one data subject"):
        personal_fields(Torn)


def test_account_and_conversation_fields_belong_to_the_aggregate_itself() -> None:
    payload = {"sender": "acc-9", "title": "Plans"}

    assert subject_id_of(Personal(subject="account"), aggregate_id="acc-1", payload=payload) == "acc-1"
    assert subject_id_of(Personal(subject="conversation"), aggregate_id="conv-1", payload=payload) == "conv-1"


def test_a_sender_field_belongs_to_the_account_in_the_sender_field() -> None:
    marker = Personal(subject="sender")

    assert subject_id_of(marker, aggregate_id="msg-1", payload={"sender": "acc-9", "body": "hi"}) == "acc-9"
    for payload in ({"body": "hi"}, {"sender": None}, {"sender": ""}):
        with pytest.raises(ValueError, match="needs a non-empty 'sender'"):
            subject_id_of(marker, aggregate_id="msg-1", payload=payload)
