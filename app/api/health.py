"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.state import app_state, clients

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
