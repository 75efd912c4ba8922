"""PostgreSQL: the async engine that every read model and query goes through."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings


def create_engine(settings: Settings, statement_cache: bool = True) -> AsyncEngine:
    """The engine; without `statement_cache` for query code, so a rebuild's table swap
    never meets a stale prepared statement (it would fail the query instead of waiting)."""
    url = make_url(settings.database_url)
    if not statement_cache:
        url = url.update_query_dict({"prepared_statement_cache_size": "0"})
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # A restarted PostgreSQL leaves dead connections in the pool; ping them on checkout.
        pool_pre_ping=True,
        pool_timeout=3,
        # Fail fast when PostgreSQL is away: callers answer 503 or retry, they never hang.
        connect_args={"timeout": 2, "command_timeout": 15},
    )
