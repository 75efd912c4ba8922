"""A message's way through both services: `GET /messages/{id}/timeline`.

    submitted → charge asked → charged or declined → delivered or rejected

Rebuilt from the event log: the message's own events, the saga's charge command
(its id is derived from the submission's event id, app.sagas.payment), and the
sender's account events that carry the message's charge reference. Each step
names what caused it (its causation id), when it happened, and how long it
waited after the step before it, so a slow hop shows where it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.api.errors import not_found
from app.api.queries import QUERY_RESPONSES, ConsistentWith, read_model
from app.sagas.payment import command_id_for, reference_for
from projections import queries

router = APIRouter(tags=["messaging"])

# Each event type of the way, and the step it is.
STEPS = {
    "MessageSubmitted": "submitted",
    "AccountCharged": "charged",
    "ChargeDeclined": "declined",
    "ChargeRefunded": "refunded",
    "MessageDelivered": "delivered",
    "MessageRejected": "rejected",
    "MessageRead": "read",
}


class Step(BaseModel):
    step: str
    at: datetime
    waited_ms: float | None  # since the step before; None for the first
    service: str  # "messaging" or "payments": whose log the step is in
    id: str  # the event's id, or the command's for "charge asked"
    caused_by: str | None  # the event or command that caused it


class Timeline(BaseModel):
    message_id: str
    correlation_id: str
    steps: list[Step]


Found = tuple[datetime, str, str, str, str | None]  # at, step, service, id, caused by


def step_of(row: Mapping[Any, Any], service: str) -> Found:
    return row["occurred_at"], STEPS.get(row["type"], row["type"]), service, str(row["event_id"]), row["causation_id"]


def timeline(
    message_id: str,
    message_events: Sequence[Mapping[Any, Any]],
    charge_events: Sequence[Mapping[Any, Any]],
    charge_command: Mapping[Any, Any] | None,
) -> Timeline | None:
    """The steps in time order; None when the message has no events (yet)."""
    if not message_events:
        return None
    submitted = message_events[0]
    found = [step_of(row, "messaging") for row in message_events] + [step_of(row, "payments") for row in charge_events]
    if charge_command is not None and charge_command["accepted_at"] is not None:
        asked = command_id_for("charge", str(submitted["event_id"]))
        found.append((charge_command["accepted_at"], "charge asked", "payments", asked, str(submitted["event_id"])))
    found.sort(key=lambda step: step[0])
    steps: list[Step] = []
    before: datetime | None = None
    for at, name, service, id_, caused_by in found:
        waited = None if before is None else round((at - before).total_seconds() * 1000, 3)
        steps.append(Step(step=name, at=at, waited_ms=waited, service=service, id=id_, caused_by=caused_by))
        before = at
    return Timeline(message_id=message_id, correlation_id=submitted["correlation_id"], steps=steps)


@router.get("/messages/{message_id}/timeline", response_model=Timeline, responses=QUERY_RESPONSES)
async def get_timeline(message_id: uuid.UUID, request: Request, consistent_with: ConsistentWith = None) -> Any:
    """Every step of a message across Messaging and Payments, with when each happened and how long it waited."""
    async with read_model(request, ("event_log", "command_status"), consistent_with) as db:
        own = [row._mapping for row in await queries.aggregate_events_until(db, str(message_id))]
        if not own or own[0]["type"] != "MessageSubmitted":
            raise not_found("message", message_id)
        submitted = own[0]
        sender = str(submitted["data"]["sender"])
        charges = [row._mapping for row in await queries.charge_events(db, sender, reference_for(str(message_id)))]
        asked = await queries.command(db, command_id_for("charge", str(submitted["event_id"])))
    return timeline(str(message_id), own, charges, None if asked is None else asked._mapping)
