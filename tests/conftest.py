"""Test session setup: the real Kafka and PostgreSQL from scripts/infra.py.

They start only when the run collected a test that needs them: `pytest
tests/unit` (the fast loop, `make check`) runs with neither. Every test run gets
its own topic namespace and its own database, built by running the migrations,
so runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app.config import Settings
from app.eventstore.kafka import admin_client
from app.eventstore.topics import create_topics

ROOT = Path(__file__).resolve().parent.parent

# Most tests speak to an API without keys; the ones about keys configure them (test_access.py).
# Set before any Settings is made, so the API processes the tests start inherit it too.
os.environ.setdefault("EVENTLINE_ALLOW_ANONYMOUS", "true")
# Personal fields are sealed in every test that runs the write path (docs/privacy.md): a key-encryption
# key of this session's own, inherited by the processes the tests start.
os.environ.setdefault("EVENTLINE_PRIVACY_KEKS", f"test:{base64.b64encode(os.urandom(32)).decode()}")


# Each suite is marked by its folder: `pytest -m "not faults"`, say, leaves out the fault rounds.
SUITES = ("unit", "integration", "faults", "cluster", "secured", "e2e")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        suite = Path(item.path).relative_to(ROOT / "tests").parts[0]
        if suite in SUITES:
            item.add_marker(suite)


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.get_closest_marker("unit") is None for item in session.items):
        # Idempotent and fast when both are up; a missing service is a setup failure, not a skip.
        subprocess.run([sys.executable, str(ROOT / "scripts" / "infra.py"), "up"], check=True)


def run_infra(action: str, *services: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "infra.py"), action, *services], check=True)


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def admin_dsn(database_url: str, database: str = "postgres") -> str:
    url = make_url(database_url).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


# Every database this run creates, dropped when the session ends.
CREATED_DATABASES: list[str] = []


async def create_database(base_url: str, name: str) -> str:
    connection = await asyncpg.connect(admin_dsn(base_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    CREATED_DATABASES.append(name)
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(base_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_dsn(base_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


CREATED_NAMESPACES: set[str] = set()


def new_settings(**overrides: object) -> Settings:
    """Settings for a fresh namespace; the environment's EVENTLINE_* still apply underneath."""
    values: dict[str, object] = {"namespace": f"t{uuid.uuid4().hex[:10]}", "environment": "test"}
    values.update(overrides)
    CREATED_NAMESPACES.add(str(values["namespace"]))
    return Settings(**values)  # type: ignore[arg-type]


async def delete_test_topics(settings: Settings) -> None:
    """Every topic of the session's namespaces: a broker slows down with thousands of idle partitions."""
    admin = admin_client(settings)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.split(".", 1)[0] in CREATED_NAMESPACES]
        for start in range(0, len(ours), 200):
            await admin.delete_topics(ours[start : start + 200])
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def settings() -> AsyncIterator[Settings]:
    base = Settings()
    name = f"eventline_test_{uuid.uuid4().hex[:10]}"
    url = await create_database(base.database_url, name)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    session_settings = new_settings(database_url=url)
    admin = admin_client(session_settings)
    await admin.start()
    try:
        await create_topics(admin, session_settings)
    finally:
        await admin.close()
    yield session_settings
    if not os.environ.get("EVENTLINE_KEEP_TEST_DATABASE"):
        for database in reversed(CREATED_DATABASES):
            await drop_database(base.database_url, database)
        try:
            await delete_test_topics(session_settings)
        except Exception as error:  # best effort: a broker stopped by a failed test keeps them
            print(f"\nleft the test topics in place: {error!r}")


@pytest.fixture
def infra() -> Iterator[object]:
    """For tests that stop Kafka or PostgreSQL: whatever happens, both are up afterwards."""
    yield run_infra
    run_infra("up")
