"""What every benchmark needs: its own namespace, topics and database, on the local infrastructure."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app.config import Settings
from app.eventstore.kafka import admin_client
from app.eventstore.topics import create_topics
from bench.paths import ROOT


def _admin_dsn(database_url: str) -> str:
    return (
        make_url(database_url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    )


async def create_database(prefix: str = "eventline_bench") -> str:
    """A new empty database on the local PostgreSQL; its SQLAlchemy (asyncpg) URL."""
    base = Settings()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(_admin_dsn(base.database_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(base.database_url).set(database=name).render_as_string(hide_password=False)


async def drop_database_url(database_url: str) -> None:
    url = make_url(database_url)
    connection = await asyncpg.connect(_admin_dsn(database_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await connection.close()


def bench_kek() -> str:
    return f"bench:{base64.b64encode(os.urandom(32)).decode()}"


async def bench_settings(**overrides: object) -> Settings:
    """A fresh namespace and database, migrated, with the topics created."""
    url = await create_database()
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    await asyncio.to_thread(command.upgrade, config, "head")
    # The load generators send no key: the API under measurement runs open, on loopback only.
    values: dict[str, object] = {
        "namespace": f"bench{uuid.uuid4().hex[:8]}",
        "database_url": url,
        "allow_anonymous": True,
        # Personal fields sealed, as production must run (docs/privacy.md): a key-encryption key per run.
        "privacy_keks": "" if os.environ.get("BENCH_PRIVACY") == "off" else bench_kek(),
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    admin = admin_client(settings)
    await admin.start()
    try:
        await create_topics(admin, settings)
    finally:
        await admin.close()
    return settings


async def drop_database(settings: Settings) -> None:
    await drop_database_url(settings.database_url)


async def delete_namespace_topics(settings: Settings) -> None:
    """Delete every topic of the benchmark's namespace (best effort)."""
    admin = admin_client(settings)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(f"{settings.namespace}.")]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


async def read_to_end(
    settings: Settings, short_topic: str, each: Callable[[bytes], object] | None = None, **consumer_options: Any
) -> tuple[int, float]:
    """Read every committed record of `<ns>.<short_topic>` from its start, handing each value to `each`.

    Returns how many records were read and the seconds it took (consumer start-up left out).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        **consumer_options,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic(short_topic), p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        started, count = time.monotonic(), 0
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=20_000)
            for records in batch.values():
                count += len(records)
                if each is not None:
                    for record in records:
                        each(record.value or b"")
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return count, time.monotonic() - started
    finally:
        await consumer.stop()
