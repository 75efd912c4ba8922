"""Event notifications as Server-Sent Events, resumable with Last-Event-ID.

Each SSE `id` is the stream's position after that notification: the next
offset of every partition of `<ns>.notifications`. A client that reconnects
with it resumes exactly there, so it misses none and repeats none. Order is
per aggregate (one aggregate's notifications share a partition), which is
the order consumers can rely on in Kafka too.

Every stream of one API process is fed by one consumer (app/api/notification_hub.py).
A service key's stream carries every notification; an end user's, those of
the accounts they hold when it opens (`X-Consistent-With` makes sure a just
opened one is among them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.errors import Problem, problem_doc
from app.api.health import probe_dependency
from app.api.notification_hub import Exhausted, NotificationHub, Stream
from app.api.queries import ConsistentWith, read_model
from app.api.state import app_state, clients
from app.eventstore import position
from app.eventstore.position import Position
from projections import queries

router = APIRouter(tags=["notifications"])


@router.get(
    "/notifications/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "One SSE event per notification"},
        400: problem_doc("Invalid Last-Event-ID"),
        422: problem_doc("Invalid request"),
        503: problem_doc("Too many streams, or Kafka is not answering; retry after Retry-After seconds"),
    },
)
async def stream(
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=4000)] = None,
    start: Annotated[
        str, Query(pattern="^(now|beginning)$", description="Where a new stream (no Last-Event-ID) starts.")
    ] = "now",
    consistent_with: ConsistentWith = None,
) -> StreamingResponse:
    """Thin notifications (type, aggregate, version, link to the event) as they are published."""
    settings = app_state(request).settings
    hub = clients(request).notifications
    resume = parse_resume(last_event_id, settings.partitions)
    if hub.full():  # shed at once, before anything is awaited; hub.open holds the cap exactly
        raise unavailable("too-many-streams", "Too many notification streams", "this server is at its stream limit")
    if not await kafka_answers(request):
        raise unavailable("kafka-unavailable", "Notifications are unavailable", "Kafka is not answering")
    if resume is not None:
        await refuse_positions_past_the_end(request, hub, resume)
    held = await held_accounts(request, consistent_with)
    begin = resume if resume is not None else {p: 0 for p in hub.position} if start == "beginning" else None
    try:
        # An end user's stream ends when their token does (None: from now; a service key's: never).
        opened = hub.open(held, begin, until=getattr(request.state, "token_expires_at", None))
    except Exhausted as error:
        raise unavailable("too-many-streams", "Too many notification streams", str(error)) from error
    return SseResponse(opened, settings.notification_heartbeat_s)


class SseResponse(StreamingResponse):
    """The stream as SSE frames; its place at the hub is given back however the response ends.

    The generator's own `finally` would not run if the response failed before iterating it
    (a client gone before the headers went out), so the place is given back here.
    """

    def __init__(self, opened: Stream, heartbeat_s: float) -> None:
        self.opened = opened
        super().__init__(
            sse_frames(opened, heartbeat_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.opened.close()


async def sse_frames(opened: Stream, heartbeat_s: float) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n\n"
    async for item in opened.items(heartbeat_s):
        if item is None:
            yield b": heartbeat\n\n"
        else:
            yield b"id: %s\nevent: %s\ndata: %s\n\n" % (position.encode(opened.cursor).encode(), item.kind, item.data)
    if opened.expired:
        yield b": the token expired; reconnect with a fresh one and the last id to resume\n\n"
    else:
        yield b": too far behind; reconnect with the last id to resume\n\n"


def parse_resume(last_event_id: str | None, partitions: int) -> Position | None:
    if not last_event_id:
        return None
    try:
        resume = position.decode(last_event_id)
    except position.InvalidPosition as error:
        raise Problem(400, "invalid-last-event-id", "Invalid Last-Event-ID", detail=str(error)) from error
    if set(resume) != set(range(partitions)):
        # An id this API sent names every partition; one that does not would leave a partition's resume undefined.
        raise Problem(
            400,
            "invalid-last-event-id",
            "Invalid Last-Event-ID",
            detail=f"a Last-Event-ID names the position of each of the stream's {partitions} partitions",
        )
    return resume


async def kafka_answers(request: Request) -> bool:
    """Kafka answers a metadata request within the readiness budget (one probe shared by all who ask)."""
    state = app_state(request)
    kafka = clients(request).command_bus.producer.client

    async def probe() -> bool:
        return await probe_dependency(kafka.fetch_all_metadata, state.settings.readiness_timeout_s) == "ok"

    answered: bool = await state.kafka_probe.get(probe)
    return answered


async def refuse_positions_past_the_end(request: Request, hub: NotificationHub, resume: Position) -> None:
    """A position beyond what Kafka holds was never sent by this API: refused at once, not waited for."""
    ahead = [TopicPartition(hub.topic, p) for p, offset in resume.items() if offset > hub.position[p]]
    if not ahead:
        return
    try:
        async with asyncio.timeout(app_state(request).settings.readiness_timeout_s):
            ends = await clients(request).offsets.end_offsets(ahead)
    except (KafkaError, TimeoutError) as error:
        raise unavailable("kafka-unavailable", "Notifications are unavailable", "Kafka is not answering") from error
    if beyond := sorted(tp.partition for tp in ahead if resume[tp.partition] > ends[tp]):
        raise Problem(
            400,
            "invalid-last-event-id",
            "Invalid Last-Event-ID",
            detail=f"the Last-Event-ID is beyond the end of the stream in partition {beyond[0]}",
        )


async def held_accounts(request: Request, consistent_with: str | None) -> frozenset[str] | None:
    """None for a service key (everything); an end user's accounts otherwise."""
    user = getattr(request.state, "user", None)
    if user is None:
        return None
    async with read_model(request, "accounts", consistent_with) as db:
        return await queries.accounts_held_by(db, user)


def unavailable(slug: str, title: str, detail: str) -> Problem:
    return Problem(503, slug, title, detail=detail, headers={"Retry-After": "1"})
