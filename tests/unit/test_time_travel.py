"""An account as it was, folded from its events (app/api/time_travel.py): pure, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app.api.time_travel import account_as_it_was

ACCOUNT_ID = str(uuid.uuid4())
START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def row(version: int, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "schema_version": 1,
        "aggregate_type": "Account",
        "aggregate_id": ACCOUNT_ID,
        "version": version,
        "occurred_at": START + timedelta(minutes=version),
        "command_id": "c",
        "correlation_id": "c",
        "causation_id": "c",
        "data": data,
        "principal": "tests",
    }


HISTORY = [
    row(1, "AccountOpened", {"owner": "Ada", "currency": "EUR", "holder": None}),
    row(2, "FundsDeposited", {"amount": 100, "reference": None, "balance_after": 100}),
    row(3, "AccountCharged", {"amount": 30, "reference": "message:1", "balance_after": 70}),
    row(4, "ChargeRefunded", {"amount": 30, "reference": "message:1", "balance_after": 100}),
]


def test_each_prefix_of_the_history_is_the_account_at_that_version() -> None:
    balances = [account_as_it_was(HISTORY[:n]) for n in range(1, 5)]

    assert [(a.version, a.balance) for a in balances if a] == [(1, 0), (2, 100), (3, 70), (4, 100)]
    last = balances[-1]
    assert last is not None and (last.owner, last.currency, last.account_id) == ("Ada", "EUR", ACCOUNT_ID)
    assert (last.created_at, last.updated_at) == (START + timedelta(minutes=1), START + timedelta(minutes=4))


def test_no_events_is_no_account() -> None:
    assert account_as_it_was([]) is None
