"""The read-model schema is built by the migrations, and they run both ways."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from alembic import command

from app.config import Settings
from tests.conftest import admin_dsn, alembic_config, create_database, drop_database


async def tables(url: str) -> set[str]:
    connection = await asyncpg.connect(admin_dsn(url, url.rsplit("/", 1)[1]))
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


async def test_upgrade_downgrade_upgrade(settings: Settings) -> None:
    name = f"eventline_migrations_{uuid.uuid4().hex[:8]}"
    url = await create_database(settings.database_url, name)
    try:
        config = alembic_config(url)
        await asyncio.to_thread(command.upgrade, config, "head")
        assert "projection_checkpoints" in await tables(url)
        await asyncio.to_thread(command.downgrade, config, "base")
        assert await tables(url) == {"alembic_version"}
        await asyncio.to_thread(command.upgrade, config, "head")
        assert "projection_checkpoints" in await tables(url)
    finally:
        await drop_database(settings.database_url, name)
