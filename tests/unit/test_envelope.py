"""What travels on the topics: every message survives encode → decode unchanged."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from app.eventstore.envelope import (
    AggregateRecord,
    CommandEnvelope,
    CommandResult,
    EventEnvelope,
    Notification,
    RememberedCommand,
    utc_now,
)

COMMAND = CommandEnvelope(
    command_id="c-1",
    type="Deposit",
    aggregate_type="Account",
    aggregate_id="acc-1",
    data={"amount": 10, "reference": "caf\u00e9 \u20ac"},
    issued_at="2026-11-25T12:00:00.000000Z",
    correlation_id="corr-1",
    causation_id="cause-1",
    expected_version=3,
    fingerprint="fp-1",
    principal="billing",
)

EVENT = EventEnvelope(
    event_id="evt-1",
    type="FundsDeposited",
    schema_version=1,
    aggregate_type="Account",
    aggregate_id="acc-1",
    version=4,
    occurred_at="2026-11-25T12:00:00.000001Z",
    command_id="c-1",
    correlation_id="corr-1",
    causation_id="c-1",
    data={"amount": 10, "reference": None, "balance_after": 10},
    principal="billing",
)

RESULT = CommandResult(
    command_id="c-1",
    aggregate_id="acc-1",
    outcome="rejected",
    version=4,
    position={"3": 1041},
    event_ids=["evt-1", "evt-2"],
    error={"code": "insufficient-funds", "title": "Insufficient funds", "detail": "x", "balance": 1},
    replayed=True,
)


def test_a_command_round_trips() -> None:
    assert CommandEnvelope.decode(COMMAND.encode()) == COMMAND


def test_a_command_without_optional_fields_round_trips_with_their_defaults() -> None:
    command = dataclasses.replace(COMMAND, expected_version=None, fingerprint="")

    decoded = CommandEnvelope.decode(command.encode())

    assert decoded == command
    assert decoded.expected_version is None


def test_a_command_decodes_from_json_without_its_optional_fields() -> None:
    raw = orjson.loads(COMMAND.encode())
    del raw["expected_version"], raw["fingerprint"]

    decoded = CommandEnvelope.decode(orjson.dumps(raw))

    assert decoded == dataclasses.replace(COMMAND, expected_version=None, fingerprint="")


def test_an_event_round_trips() -> None:
    assert EventEnvelope.decode(EVENT.encode()) == EVENT


def test_an_event_encodes_as_plain_json_with_every_field() -> None:
    assert orjson.loads(EVENT.encode()) == {
        "event_id": "evt-1",
        "type": "FundsDeposited",
        "schema_version": 1,
        "aggregate_type": "Account",
        "aggregate_id": "acc-1",
        "version": 4,
        "occurred_at": "2026-11-25T12:00:00.000001Z",
        "command_id": "c-1",
        "correlation_id": "corr-1",
        "causation_id": "c-1",
        "data": {"amount": 10, "reference": None, "balance_after": 10},
        "principal": "billing",
    }


def test_an_event_from_before_the_audit_trail_decodes_with_no_principal() -> None:
    raw = orjson.loads(EVENT.encode())
    del raw["principal"]

    assert EventEnvelope.decode(orjson.dumps(raw)) == dataclasses.replace(EVENT, principal="")


def test_an_event_from_a_newer_version_decodes_without_its_new_fields() -> None:
    raw = orjson.loads(EVENT.encode()) | {"added_later": {"x": 1}}

    assert EventEnvelope.decode(orjson.dumps(raw)) == EVENT


def test_event_headers_carry_type_and_schema_version_as_bytes() -> None:
    assert EVENT.headers() == [("type", b"FundsDeposited"), ("schema_version", b"1")]
    assert dataclasses.replace(EVENT, schema_version=12).headers()[1] == ("schema_version", b"12")


def test_a_result_round_trips() -> None:
    assert CommandResult.decode(RESULT.encode()) == RESULT


def test_a_result_with_defaults_round_trips() -> None:
    result = CommandResult("c-2", "acc-1", "succeeded", 1)

    decoded = CommandResult.decode(result.encode())

    assert decoded == result
    assert (decoded.position, decoded.event_ids, decoded.error, decoded.replayed) == ({}, [], None, False)


def test_default_lists_and_dicts_are_not_shared_between_results() -> None:
    first = CommandResult("c-1", "acc-1", "succeeded", 1)
    second = CommandResult("c-2", "acc-1", "succeeded", 1)

    assert first.position is not second.position
    assert first.event_ids is not second.event_ids


def test_an_aggregate_record_round_trips_and_no_longer_carries_commands() -> None:
    record = AggregateRecord("Account", "acc-1", 4, {"snapshot_version": 1, "balance": 10})

    decoded = AggregateRecord.decode(record.encode())

    assert decoded == record
    assert orjson.loads(record.encode())["recent"] == []  # kept, so an older processor can read it


def test_a_remembered_command_round_trips_with_its_result() -> None:
    remembered = RememberedCommand("c-1", "fp-1", RESULT)

    assert RememberedCommand.decode(remembered.encode()) == remembered


def test_an_aggregate_record_without_state_or_memory_round_trips() -> None:
    record = AggregateRecord("Account", "acc-1", 0, None)

    assert AggregateRecord.decode(record.encode()) == record


def test_messages_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        EVENT.version = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        COMMAND.command_id = "c-2"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        RESULT.outcome = "succeeded"  # type: ignore[misc]


def test_utc_now_is_rfc3339_utc_with_microseconds_ending_in_z() -> None:
    before = datetime.now(UTC)

    stamp = utc_now()

    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", stamp), stamp
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= parsed <= datetime.now(UTC) + timedelta(seconds=1)


def test_utc_now_stamps_sort_as_text_in_time_order() -> None:
    stamps = [utc_now() for _ in range(50)]

    assert stamps == sorted(stamps)


def test_a_notification_links_to_its_event() -> None:
    notification = Notification.of(EVENT, published_at="2026-11-25T12:00:01.000000Z")

    assert notification == Notification(
        event_id="evt-1",
        type="FundsDeposited",
        aggregate_type="Account",
        aggregate_id="acc-1",
        version=4,
        published_at="2026-11-25T12:00:01.000000Z",
        href="/events/evt-1",
    )
    assert orjson.loads(notification.encode())["href"] == "/events/evt-1"
    assert "data" not in orjson.loads(notification.encode())
