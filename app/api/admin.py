"""Operator endpoints: projection status, lag and failures."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from app.api.errors import problem_doc
from app.api.schemas import FailureView, ProjectionView
from app.api.state import app_state, clients
from projections import failures
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
