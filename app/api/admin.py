"""Operator endpoints: projections (status, lag, stalls, failures and their retry), processors, the saga's backlog."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from app.api.errors import Problem, not_found, problem_doc
from app.api.schemas import FailureView, ProjectionView
from app.api.state import app_state, clients
from app.db import is_outage
from app.eventstore.processor_group import processors_view
from app.observability.logs import error_text
from projections import failures, queries
from projections.registry import PROJECTIONS
from projections.status import projection_status

router = APIRouter(tags=["operations"])

# A projection name; anything else (a NUL, say, which PostgreSQL text refuses) is a 422, not a 500.
NAME = "^[A-Za-z0-9_.-]+$"


@router.get("/projections", response_model=list[ProjectionView])
async def list_projections(request: Request) -> Any:
    """Each projection's state, checkpoints, lag per partition, open failures and last rebuild."""
    state = clients(request)
    return await projection_status(app_state(request).settings, state.engine, state.offsets)


@router.get("/projections/failures", response_model=list[FailureView], responses={422: problem_doc("Invalid request")})
async def list_failures(
    request: Request, projection: str | None = Query(default=None, max_length=100, pattern=NAME)
) -> Any:
    """Open failures: events a projection could not apply after its retries."""
    rows = await failures.open_failures(clients(request).engine, projection)
    return [FailureView.model_validate(row._mapping) for row in rows]


class RetryOutcome(BaseModel):
    failure_id: int
    outcome: str


@router.post(
    "/projections/failures/{failure_id}/retry",
    response_model=RetryOutcome,
    responses={404: problem_doc("No open failure has this id"), 422: problem_doc("The event fails again")},
)
async def retry_failure(failure_id: int, request: Request) -> Any:
    """Apply a failed event again (after a fix); a halted projection resumes from its checkpoint."""
    open_clients = clients(request)
    rows = {row.failure_id: row for row in await failures.open_failures(open_clients.engine)}
    row = rows.get(failure_id)
    if row is None or row.projection not in PROJECTIONS:
        raise not_found("open failure", failure_id)
    try:
        outcome = await failures.retry(open_clients.operator_engine, PROJECTIONS[row.projection], failure_id)
    except Exception as error:  # the handler still fails on it: the failure stays open
        if is_outage(error):
            raise
        raise Problem(422, "still-failing", "Still failing", detail=error_text(error)) from None
    return RetryOutcome(failure_id=failure_id, outcome=outcome)


class PartitionOwner(BaseModel):
    partition: int
    owner: str | None = Field(description="The processor (client id @ host) that owns it; None while unowned.")
    committed: int | None = Field(description="The processor group's committed offset of <ns>.commands.")
    end: int | None
    lag: int | None
    last_commit_age_s: float | None = Field(
        default=None, description="Seconds since its owner's latest batch was committed (from the commit's metadata)."
    )
    batches: int | None = Field(default=None, description="Batches its owner has committed since taking it over.")


class ProcessorsView(BaseModel):
    group_state: str
    members: list[str]
    partitions: list[PartitionOwner]


@router.get("/processors", response_model=ProcessorsView)
async def list_processors(request: Request) -> Any:
    """Which processor owns which command partition, and how far each partition's decisions have come."""
    settings = app_state(request).settings
    return await processors_view(settings, clients(request).offsets)


class PendingMessage(BaseModel):
    message_id: str
    sender: str
    price: int
    submitted_at: datetime
    waiting_s: float
    over_alert: bool


@router.get("/saga/pending", response_model=list[PendingMessage], responses={422: problem_doc("Invalid request")})
async def list_pending(request: Request, limit: int = Query(default=50, ge=1, le=500)) -> Any:
    """Messages waiting for their payment, the longest waiting first."""
    settings = app_state(request).settings
    async with clients(request).engine.connect() as db:
        rows = await queries.oldest_pending(db, limit)
    return [PendingMessage(**row._mapping, over_alert=row.waiting_s > settings.saga_pending_alert_s) for row in rows]
