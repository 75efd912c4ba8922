"""An account as it was: `GET /accounts/{id}?as_of=<time>` or `?version=N`.

Folded from the account's own events with the domain's `evolve` (the same fold
the processor runs), never from the `accounts` read model, which only knows
the present. The events are read from `event_log`, the log's queryable copy
(every event whole, by aggregate and version, personal fields opened or
erased like everywhere else); each is upcast to its current schema first.

`as_of` takes the last event that occurred at or before that moment (a time in
the future is the present); `version` takes events up to that version. Before
the first event, or past the last version, there is no such account: 404.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from app.api.schemas import AccountView
from app.domain.accounts import AccountEvent
from app.domain.registry import ACCOUNT
from app.eventstore.envelope import EventEnvelope, domain_event
from app.eventstore.upcasting import upcast


def envelope_of(row: Mapping[Any, Any]) -> EventEnvelope:
    occurred: datetime = row["occurred_at"]
    return EventEnvelope(
        event_id=str(row["event_id"]),
        type=row["type"],
        schema_version=row["schema_version"],
        aggregate_type=row["aggregate_type"],
        aggregate_id=str(row["aggregate_id"]),
        version=row["version"],
        occurred_at=occurred.isoformat(),
        command_id=row["command_id"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        data=row["data"],
        principal=row["principal"],
    )


def account_as_it_was(rows: Sequence[Mapping[Any, Any]]) -> AccountView | None:
    """The account after the given events (its own, in version order), or None when there are none."""
    if not rows:
        return None
    state = None
    for row in rows:
        state = ACCOUNT.evolve(state, cast(AccountEvent, domain_event(upcast(envelope_of(row)))))
    assert state is not None
    first, last = rows[0], rows[-1]
    return AccountView(
        account_id=str(last["aggregate_id"]),
        owner=state.owner,
        currency=state.currency,
        balance=state.balance,
        version=last["version"],
        created_at=first["occurred_at"],
        updated_at=last["occurred_at"],
    )
