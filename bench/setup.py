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


async def bench_settings(**overrides: object) -> Settings:
    """A fresh namespace and database, migrated, with the topics created."""
    base = Settings()
    name = f"eventline_bench_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(base.database_url).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin_url.render_as_string(hide_password=False))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = make_url(base.database_url).set(database=name).render_as_string(hide_password=False)
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
    url = make_url(settings.database_url)
    admin_url = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await connection.close()
