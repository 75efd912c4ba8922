"""What projections match on: each event as its domain class, and what they do with the rest."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from app.domain import accounts, messages
from app.eventstore.envelope import EventEnvelope
from projections.base import Message
from projections.ledger import COLUMNS, movements


def message(aggregate_type: str, kind: str, data: dict[str, Any], version: int = 2) -> Message:
    event = EventEnvelope("e-1", kind, 1, aggregate_type, "a-1", version, "2026-12-01T00:00:00Z", "c", "c", "c", data)
    return Message("events", 0, 7, event)


def test_a_known_event_comes_as_its_domain_class() -> None:
    fact = message("Account", "FundsDeposited", {"amount": 5, "reference": None, "balance_after": 9}).fact
    assert fact == accounts.FundsDeposited(amount=5, balance_after=9)
    read = message("Message", "MessageRead", {"reader": "r-1"}).fact
    assert isinstance(read, messages.MessageRead) and read.reader == "r-1"


def test_each_message_is_decoded_once_for_every_projection() -> None:
    shared = message("Account", "FundsDeposited", {"amount": 5, "reference": None, "balance_after": 9})
    assert shared.fact is shared.fact
    unknown = message("Account", "AccountRenamed", {"owner": "X"})
    assert unknown.fact is None and unknown.fact is None


def test_a_type_no_aggregate_declares_is_passed_by() -> None:
    # Written by a newer version, say: no projection builds from it, none fails on it.
    assert message("Account", "AccountRenamed", {"owner": "X"}).fact is None
    assert message("Loyalty", "PointsEarned", {"points": 3}).fact is None
    assert movements([message("Account", "AccountRenamed", {"owner": "X"})]) == []


def test_data_that_is_not_its_types_raises_and_becomes_a_poison_event() -> None:
    with pytest.raises(pydantic.ValidationError):
        _ = message("Account", "FundsDeposited", {"amount": "five", "balance_after": 9}).fact


def test_the_ledger_takes_the_movements_and_names_them() -> None:
    rows = movements(
        [
            message("Account", "AccountOpened", {"owner": "A", "currency": "EUR"}, version=1),
            message("Account", "FundsDeposited", {"amount": 5, "reference": "r", "balance_after": 5}),
            message("Account", "AccountCharged", {"amount": 2, "reference": "m", "balance_after": 3}, version=3),
        ]
    )
    named = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    assert [(r["kind"], r["amount"], r["balance_after"], r["reference"]) for r in named] == [
        ("deposit", 5, 5, "r"),
        ("charge", 2, 3, "m"),
    ]
