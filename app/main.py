"""The FastAPI application: `create_app()` wires routers, error handling and the lifespan.

The lifespan owns every client: nothing connects at import time. With
`workers`, the same process also runs background workers (the all-in-one
`eventline run`); a worker that dies takes the process down with it, loudly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.types import ASGIApp

from app.api import (
    admin,
    asyncapi,
    commands,
    health,
    messaging,
    metrics,
    notifications,
    queries,
    subjects,
    timeline,
)
from app.api.consistency import ConsistencyWaiter
from app.api.console import install_console
from app.api.correlation import CorrelationMiddleware
from app.api.docs import install_docs
from app.api.end_users import TokenVerifier
from app.api.errors import install_error_handlers, with_problem_component
from app.api.lean_routes import LeanRoute
from app.api.limits import DeclaredBodyLimit
from app.api.notification_hub import NotificationHub
from app.api.security import refuse_open_access, require
from app.api.state import AppState, Clients, install_state
from app.api_keys import parse_api_keys
from app.config import Settings, get_settings
from app.db import create_operator_engine, create_probe_engine, create_query_engine
from app.eventstore.command_bus import CommandBus, new_producer
from app.eventstore.kafka import connection
from app.eventstore.topics import check_topics
from app.privacy.runtime import start_key_store

log = logging.getLogger(__name__)

Worker = Callable[[Settings], Coroutine[Any, Any, None]]


class EventlineAPI(FastAPI):
    """FastAPI with one more layer outside all others: an oversized declared body gets problem+json.

    Starlette's own limit (FastAPI's `max_body_size`, which handles streamed
    bodies) answers a too-large Content-Length in plain text, overriding any
    response; answering before it keeps every error problem+json.
    """

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.max_body_size is None else DeclaredBodyLimit(stack, self.max_body_size)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = with_problem_component(super().openapi())
        return self.openapi_schema


def operation_id(route: APIRoute) -> str:
    """The route's function name (`deposit`, `open_account`): what a generated client calls it."""
    return route.name


def create_app(settings: Settings | None = None, workers: Mapping[str, Worker] | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await check_topics(settings)
        engine = create_query_engine(settings)
        probe_engine = create_probe_engine(settings)
        operator_engine = create_operator_engine(settings)
        producer = new_producer(settings)
        await producer.start()
        try:
            # Refuses keys that cannot open what is stored; readies the pseudonym key end users are named by.
            keys = await start_key_store(settings, producer, pseudonyms=True)
        except BaseException:
            await producer.stop()
            raise
        bus = CommandBus(settings, producer, keys)
        await bus.start()
        offsets = AIOKafkaConsumer(**connection(settings), isolation_level="read_committed")
        await offsets.start()
        watermarks = AIOKafkaConsumer(**connection(settings), isolation_level="read_uncommitted")
        await watermarks.start()
        consistency = ConsistencyWaiter(settings, engine, offsets, watermarks)
        await consistency.start()
        hub = NotificationHub(settings)
        await hub.start()
        state.clients = Clients(
            engine=engine,
            probe_engine=probe_engine,
            operator_engine=operator_engine,
            command_bus=bus,
            consistency=consistency,
            offsets=offsets,
            notifications=hub,
        )
        tasks = [start_worker(name, worker, settings) for name, worker in (workers or {}).items()]
        try:
            yield
        finally:
            state.clients = None
            await stop_workers(tasks)
            closes: list[Callable[[], Coroutine[Any, Any, None]]] = [
                hub.stop,
                offsets.stop,
                watermarks.stop,
                consistency.stop,
                bus.stop,
                *([keys.stop] if keys is not None else []),
                bus.producer.stop,  # last: the key store writes with it
            ]
            for close in (*closes, engine.dispose, probe_engine.dispose, operator_engine.dispose):
                await close_quietly(close)

    app = EventlineAPI(
        title="Eventline",
        summary="Event-sourced paid messaging: Kafka is the source of truth, PostgreSQL holds read models.",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    LeanRoute.enabled = settings.lean_routes  # FastAPI builds the routes' handlers when they first serve
    install_error_handlers(app)
    install_docs(app)
    install_console(app)
    keys, tokens = parse_api_keys(settings.api_keys), TokenVerifier.from_settings(settings)
    refuse_open_access(keys, tokens is not None, settings.allow_anonymous)  # fail closed: before anything is served
    state = AppState(settings, keys, tokens)
    install_state(app, state)
    if settings.cors_origins:
        origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "If-Match",
                "Prefer",
                "X-Consistent-With",
                "X-Correlation-ID",
                "Last-Event-ID",
            ],
            expose_headers=["ETag", "Location", "Retry-After"],
        )
    app.include_router(health.router)
    app.include_router(commands.router, dependencies=[require("writer")])
    app.include_router(queries.router, dependencies=[require("reader")])
    app.include_router(messaging.router, dependencies=[require("reader")])
    app.include_router(timeline.router, dependencies=[require("reader")])
    app.include_router(notifications.router, dependencies=[require("reader")])
    app.include_router(admin.router, dependencies=[require("admin")])
    app.include_router(subjects.router, dependencies=[require("admin")])
    app.include_router(metrics.router, dependencies=[require("reader")])
    app.include_router(asyncapi.router)
    app.add_middleware(CorrelationMiddleware)
    return app


async def close_quietly(close: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Close one client on shutdown; one that fails must not keep the others open.

    aiokafka's consumer can raise CancelledError from `stop()` when stopped right
    after starting; that is swallowed unless this task itself is being cancelled.
    """
    try:
        await close()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception as error:
        log.warning("closing %s failed: %r", getattr(close, "__qualname__", close), error)


def start_worker(name: str, worker: Worker, settings: Settings) -> asyncio.Task[None]:
    task = asyncio.create_task(worker(settings), name=name)
    task.add_done_callback(_exit_when_a_worker_dies)
    return task


def _exit_when_a_worker_dies(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    log.critical("worker %s stopped: %r; shutting down", task.get_name(), task.exception())
    os.kill(os.getpid(), signal.SIGTERM)


async def stop_workers(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.remove_done_callback(_exit_when_a_worker_dies)
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
