"""`eventline projector`: every projection in one runner, so one consumer and one database
transaction per batch serve them all (each keeps checkpoints of its own)."""

from __future__ import annotations

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
        await ProjectionRunner.live(settings, engine, list(projections or PROJECTIONS.values())).run()
    finally:
        await engine.dispose()
