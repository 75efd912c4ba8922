"""The read-model schema is built by the migrations, and they run both ways."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Connection, Integer, MetaData, Table
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings
from projections.tables import metadata
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


def schema_differences(connection: Connection, metadata: MetaData) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": False})
    return list(compare_metadata(context, metadata))


async def test_the_migrations_build_exactly_the_tables_the_code_declares(settings: Settings) -> None:
    """projections/tables.py (Alembic's metadata) and the migrations agree: no table, column or index apart."""
    engine = create_async_engine(settings.database_url)  # the session database, migrated to head
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(schema_differences, metadata) == []
            drifted = MetaData()
            for table in metadata.tables.values():
                table.to_metadata(drifted)
            Table("not_migrated", drifted, Column("id", Integer, primary_key=True))
            # The check can fail: a table declared in code but in no migration is a difference.
            assert await connection.run_sync(schema_differences, drifted) != []
    finally:
        await engine.dispose()
