"""The FastAPI application: `create_app()` wires routers, error handling and the lifespan.

The lifespan owns every client: nothing connects at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from app.api import health
from app.api.errors import install_error_handlers
from app.config import Settings, get_settings
from app.db import create_engine
from app.eventstore.kafka import admin_client, wait_for_kafka
from app.eventstore.topics import verify_topics


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await wait_for_kafka(settings)
        admin = admin_client(settings)
        await admin.start()
        try:
            await verify_topics(admin, settings)
        finally:
            await admin.close()
        engine = create_engine(settings)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
        )
        await producer.start()
        app.state.settings, app.state.engine, app.state.producer = settings, engine, producer
        try:
            yield
        finally:
            await producer.stop()
            await engine.dispose()

    app = FastAPI(
        title="Eventline",
        summary="Event-sourced paid messaging: Kafka is the source of truth, PostgreSQL holds read models.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    return app
