"""`eventline projector`: one runner per projection, in one process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from app.config import Settings
from app.db import create_engine
from projections.base import Projection
from projections.registry import PROJECTIONS
from projections.runner import ProjectionRunner


async def run_projector(settings: Settings, projections: Iterable[Projection] | None = None) -> None:
    """Run every projection (or the given ones) until cancelled."""
    # No ping on checkout: a batch on a connection that died with PostgreSQL fails and is retried.
    engine = create_engine(settings, pre_ping=False)
    try:
        runners = [ProjectionRunner(settings, engine, p) for p in (projections or PROJECTIONS.values())]
        await asyncio.gather(*(runner.run() for runner in runners))
    finally:
        await engine.dispose()
