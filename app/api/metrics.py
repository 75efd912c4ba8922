"""`GET /metrics`: Prometheus text, with the system-wide gauges refreshed at scrape time."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from app.api.state import app_state, clients
from app.observability.metrics import PROJECTION_FAILURES, PROJECTION_LAG, SAGA_PENDING, exposition
from projections.status import projection_status
from projections.tables import messages

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    """Commands by type and outcome, latencies, events appended, projection lag, failures, saga backlog."""
    settings, state = app_state(request).settings, clients(request)
    for view in await projection_status(settings, state.engine, state.offsets):
        PROJECTION_FAILURES.labels(view["name"]).set(view["failures"])
        for partition in view["partitions"]:
            if partition["lag"] is not None:
                PROJECTION_LAG.labels(view["name"], partition["topic"], str(partition["partition"])).set(
                    partition["lag"]
                )
    async with state.engine.connect() as connection:
        pending = await connection.scalar(
            select(func.count()).select_from(messages).where(messages.c.status == "pending_payment")
        )
    SAGA_PENDING.set(pending or 0)
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
