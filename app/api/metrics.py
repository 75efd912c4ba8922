"""`GET /metrics`: Prometheus text, with the system-wide gauges refreshed at scrape time."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.state import app_state, clients
from app.observability.metrics import (
    PROJECTION_CHECKPOINT_AGE,
    PROJECTION_FAILURES,
    PROJECTION_LAG,
    PROJECTION_STALLED,
    SAGA_OLDEST_PENDING,
    SAGA_PENDING,
    exposition,
)
from projections import queries
from projections.status import projection_status

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    """Commands by type and outcome, latencies, events appended, projection lag, failures, saga backlog."""
    settings, state = app_state(request).settings, clients(request)
    for view in await projection_status(settings, state.engine, state.offsets):
        PROJECTION_FAILURES.labels(view["name"]).set(view["failures"])
        PROJECTION_STALLED.labels(view["name"]).set(1 if view["stalled"] else 0)
        for partition in view["partitions"]:
            labels = (view["name"], partition["topic"], str(partition["partition"]))
            if partition["lag"] is not None:
                PROJECTION_LAG.labels(*labels).set(partition["lag"])
                PROJECTION_CHECKPOINT_AGE.labels(*labels).set(
                    (partition["checkpoint_age_s"] or 0.0) if partition["lag"] else 0.0
                )
    async with state.engine.connect() as connection:
        pending = await queries.pending_payments(connection, settings.saga_pending_alert_s)
    SAGA_PENDING.set(pending["pending"])
    SAGA_OLDEST_PENDING.set(pending["oldest_pending_s"] or 0.0)
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
