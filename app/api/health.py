"""Liveness and readiness probes, and the stalls view (work that stopped moving)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.state import app_state, clients
from projections import queries
from projections.status import projection_status

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


DependencyState = Literal["ok", "down", "timeout"]


class Readiness(BaseModel):
    kafka: DependencyState
    postgres: DependencyState


@router.get("/ready", responses={503: {"model": Readiness, "description": "A dependency is down"}})
async def ready(request: Request, response: Response) -> Readiness:
    """Kafka and PostgreSQL both answer; 503 names the ones that do not.

    Each check has its own time budget and they run concurrently, so a hung
    dependency cannot hold the probe past that budget.
    """
    state = clients(request)
    budget = app_state(request).settings.readiness_timeout_s

    async def probe() -> tuple[DependencyState, DependencyState]:
        kafka, postgres = await asyncio.gather(
            probe_dependency(lambda: state.command_bus.producer.client.fetch_all_metadata(), budget),
            probe_dependency(lambda: _ping_postgres(state.probe_engine), budget),
        )
        return kafka, postgres

    # Shared by concurrent callers, on a connection of its own: a flood of probes takes nothing from queries.
    kafka, postgres = await app_state(request).readiness.get(probe)
    if kafka != "ok" or postgres != "ok":
        response.status_code = 503
    return Readiness(kafka=kafka, postgres=postgres)


async def probe_dependency(check: Callable[[], Awaitable[object]], budget: float) -> DependencyState:
    try:
        await asyncio.wait_for(check(), budget)
    except TimeoutError:
        return "timeout"
    except Exception:
        return "down"
    return "ok"


async def _ping_postgres(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


class StalledProjection(BaseModel):
    name: str
    checkpoint_age_s: float | None
    stalled_partitions: list[str]  # "events[3]"


class SagaBacklog(BaseModel):
    pending: int
    oldest_pending_s: float | None
    over_alert: int = Field(description="Messages waiting for their payment longer than the alert setting.")


class Stalls(BaseModel):
    projections: list[StalledProjection]
    saga: SagaBacklog


@router.get("/stalls", responses={503: {"model": Stalls, "description": "Something stopped moving"}})
async def stalls(request: Request, response: Response) -> Stalls:
    """Work that stopped moving, for monitors: projections whose checkpoints stood still while the log
    moved on (`EVENTLINE_PROJECTION_STALL_AFTER_S`), and messages waiting for their payment longer than
    `EVENTLINE_SAGA_PENDING_ALERT_S`. 503 while there is any. `/health/ready` stays about dependencies."""
    settings, state = app_state(request).settings, clients(request)
    views = await projection_status(settings, state.engine, state.offsets)
    stalled = [
        StalledProjection(
            name=view["name"],
            checkpoint_age_s=view["checkpoint_age_s"],
            stalled_partitions=[f"{p['topic']}[{p['partition']}]" for p in view["partitions"] if p["stalled"]],
        )
        for view in views
        if view["stalled"]
    ]
    async with state.engine.connect() as connection:
        saga = SagaBacklog(**await queries.pending_payments(connection, settings.saga_pending_alert_s))
    if stalled or saga.over_alert:
        response.status_code = 503
    return Stalls(projections=stalled, saga=saga)
