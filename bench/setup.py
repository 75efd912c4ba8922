"""What every benchmark needs: its own namespace, topics and database, on the local infrastructure."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app.config import Settings
from app.eventstore.kafka import admin_client
from app.eventstore.topics import create_topics
from bench.paths import ROOT


def _admin_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)


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


async def bench_settings(**overrides: object) -> Settings:
    """A fresh namespace and database, migrated, with the topics created."""
    url = await create_database()
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    await asyncio.to_thread(command.upgrade, config, "head")
    values: dict[str, object] = {"namespace": f"bench{uuid.uuid4().hex[:8]}", "database_url": url}
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
