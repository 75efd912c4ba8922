"""PostgreSQL: the async engine that every read model and query goes through."""

from __future__ import annotations

import asyncpg
import orjson
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings


def create_engine(settings: Settings, pre_ping: bool = True) -> AsyncEngine:
    """The engine of the processes that write read models (projector, rebuilds, the command line).

    Without `pre_ping` for workers that retry a failed transaction anyway (the
    projector): the ping is a round trip on every checkout, a third of a small batch.
    """
    size = settings.database_pool_size
    return _engine(make_url(settings.database_url), pool_size=size, max_overflow=size, pre_ping=pre_ping)


def create_query_engine(settings: Settings) -> AsyncEngine:
    """The API's engine: queries only, each statement on its own, and PostgreSQL refuses any write.

    A query runs no `BEGIN` and no `ROLLBACK` around it, and the checkout's ping is one
    round trip instead of three (SQLAlchemy wraps a ping outside a transaction in one):
    a read was seven round trips (the ping's three, `BEGIN`, prepare, execute, `ROLLBACK`
    on the connection's return), now three. Nothing is lost: at
    PostgreSQL's READ COMMITTED each statement takes its own snapshot inside a transaction
    too. The sessions are read-only (`default_transaction_read_only`), so the promise that
    queries never write is the database's to keep, not only the code's (an operator's retry of
    a failed event, the API's one write, has `create_operator_engine`).

    Without a prepared-statement cache, so a rebuild's table swap never meets a stale
    prepared statement: the query waits for the swap instead of failing
    (docs/write-path.md measures what the cache would save).
    """
    url = make_url(settings.database_url).update_query_dict({"prepared_statement_cache_size": "0"})
    # Every connection it opens stays in the pool (as many as the other engines' pool and overflow
    # together): one notification wakes every read waiting for a projection at once, and an
    # overflow connection opened for such a burst was closed again on its return.
    return _engine(
        url,
        pool_size=2 * settings.database_pool_size,
        max_overflow=0,
        pre_ping=True,
        isolation_level="AUTOCOMMIT",
        server_settings={"default_transaction_read_only": "on"},
    )


def create_operator_engine(settings: Settings) -> AsyncEngine:
    """One connection for the API's one write: an operator retrying a failed event
    (`POST /projections/failures/{id}/retry` applies it to its read model). Rare, so one
    connection, opened when first used."""
    return _engine(make_url(settings.database_url), pool_size=1, max_overflow=0, pre_ping=True)


def create_probe_engine(settings: Settings) -> AsyncEngine:
    """A single connection for `/health/ready` alone, apart from the pool the queries use.

    The probe is open to anyone, and a flood of probes that took pooled connections left
    queries none (503). One connection is enough: probes are shared, one runs at a time
    (app/api/readiness.py).
    """
    return _engine(make_url(settings.database_url), pool_size=1, max_overflow=0, pre_ping=True)


def _engine(
    url: URL,
    *,
    pool_size: int,
    max_overflow: int,
    pre_ping: bool,
    isolation_level: str | None = None,
    server_settings: dict[str, str] | None = None,
) -> AsyncEngine:
    connect_args: dict[str, object] = {"timeout": 2, "command_timeout": 15}
    if server_settings:
        connect_args["server_settings"] = server_settings
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # A restarted PostgreSQL leaves dead connections in the pool; ping them on checkout.
        pool_pre_ping=pre_ping,
        pool_timeout=3,
        # Fail fast when PostgreSQL is away: callers answer 503 or retry, they never hang.
        connect_args=connect_args,
        # JSONB columns (event data) through orjson: several times faster than json.dumps.
        json_serializer=lambda value: orjson.dumps(value).decode(),
        json_deserializer=orjson.loads,
        **({"isolation_level": isolation_level} if isolation_level else {}),
    )


OUTAGES: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # includes "cannot connect now" (starting up, shutting down)
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,  # admin shutdown, crash shutdown, query canceled at shutdown
    asyncpg.InterfaceError,  # the connection is closed
)


def is_outage(error: BaseException) -> bool:
    """True when PostgreSQL is unreachable or restarting, whatever wrapped the driver's error.

    SQLAlchemy wraps asyncpg's exceptions (sometimes twice), so the chain of
    causes is searched; an outage is something to wait out, never a bug.
    """
    return any(_outage(cause) for cause in _causes(error))


def _outage(error: BaseException) -> bool:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (*OUTAGES, sa_exc.OperationalError, sa_exc.InterfaceError))


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        pending += [current.__cause__, getattr(current, "orig", None)]
    return chain
