"""Event notifications as Server-Sent Events, resumable with Last-Event-ID.

Each SSE `id` is the stream's position after that notification: the next
offset of every partition of `<ns>.notifications`. A client that reconnects
with it resumes exactly there, so it misses none and repeats none. Order is
per aggregate (one aggregate's notifications share a partition), which is
the order consumers can rely on in Kafka too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from app.api.errors import Problem, problem_doc
from app.api.state import app_state
from app.config import Settings
from app.eventstore import position
from app.eventstore.bad_records import UNREADABLE, skip_bad_record

router = APIRouter(tags=["notifications"])


@router.get(
    "/notifications/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "One SSE event per notification"},
        400: problem_doc("Invalid Last-Event-ID"),
        422: problem_doc("Invalid request"),
    },
)
async def stream(
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=4000)] = None,
    start: Annotated[
        str, Query(pattern="^(now|beginning)$", description="Where a new stream (no Last-Event-ID) starts.")
    ] = "now",
) -> StreamingResponse:
    """Thin notifications (type, aggregate, version, link to the event) as they are published."""
    settings = app_state(request).settings
    try:
        resume = position.decode(last_event_id) if last_event_id else None
    except position.InvalidPosition as error:
        raise Problem(400, "invalid-last-event-id", "Invalid Last-Event-ID", detail=str(error)) from error
    consumer = await open_consumer(settings, resume, start)
    return StreamingResponse(
        events(request, settings, consumer),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def open_consumer(settings: Settings, resume: dict[int, int] | None, start: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    tps = [TopicPartition(settings.topic("notifications"), p) for p in range(settings.partitions)]
    consumer.assign(tps)
    if resume is not None:
        for tp in tps:
            consumer.seek(tp, resume.get(tp.partition, 0))
    elif start == "beginning":
        await consumer.seek_to_beginning(*tps)
    else:
        await consumer.seek_to_end(*tps)
    for tp in tps:  # resolve "end" now, before anything else is published
        await consumer.position(tp)
    return consumer


async def events(request: Request, settings: Settings, consumer: AIOKafkaConsumer) -> AsyncIterator[bytes]:
    cursor = {tp.partition: await consumer.position(tp) for tp in consumer.assignment()}
    quiet_since = asyncio.get_running_loop().time()
    try:
        yield b"retry: 1000\n\n"
        while not await request.is_disconnected():
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            for tp, records in sorted(batch.items(), key=lambda item: item[0].partition):
                for record in records:
                    cursor[tp.partition] = record.offset + 1
                    if (frame := sse(position.encode(cursor), record)) is not None:
                        yield frame
            now = asyncio.get_running_loop().time()
            if batch:
                quiet_since = now
            elif now - quiet_since >= settings.notification_heartbeat_s:
                quiet_since = now
                yield b": heartbeat\n\n"
    finally:
        await consumer.stop()


def sse(event_id: str, record: ConsumerRecord[bytes, bytes]) -> bytes | None:
    """One notification as an SSE frame, or None for a record that is not one (skipped, counted)."""
    try:
        notification = orjson.loads(record.value or b"")
        kind = str(notification["type"])
        if not kind.isascii() or not kind.isprintable():
            raise ValueError("not a notification type")
    except UNREADABLE as error:
        skip_bad_record("notifications-stream", record, error)
        return None
    # Serialised again: a record's own bytes could hold a newline, which would end the frame early.
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), kind.encode(), orjson.dumps(notification))
