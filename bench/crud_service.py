"""CRUD baseline: the same deposit as Eventline, done the usual way.

    python -m bench.crud_service --port PORT [--workers N]   (database from BENCH_DATABASE_URL)

Minimal FastAPI + SQLAlchemy 2 (async) + asyncpg, served by uvicorn with the
same options as `eventline api` (uvloop, httptools, access log at info). A
deposit locks the balance row (`SELECT … FOR UPDATE`), updates it and inserts
a ledger row, in one transaction. Its own database; the tables are created at
startup.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from bench.peer_bodies import AmountRequest, OpenAccountRequest

metadata = MetaData()
accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String, primary_key=True),
    Column("owner", String, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
)
ledger = Table(
    "ledger",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("account_id", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
)


def create_app(database_url: str, pool_size: int) -> FastAPI:
    engine = create_async_engine(database_url, pool_size=pool_size, max_overflow=pool_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield  # the tables exist: main() made them before any worker started
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/accounts", status_code=201)
    async def open_account(body: OpenAccountRequest) -> dict[str, Any]:
        account_id = str(uuid.uuid4())
        async with engine.begin() as connection:
            await connection.execute(
                insert(accounts).values(
                    account_id=account_id, owner=body.owner, currency=body.currency, balance=0, version=1
                )
            )
        return {"aggregate_id": account_id, "version": 1}

    @app.post("/accounts/{account_id}/deposits")
    async def deposit(account_id: uuid.UUID, body: AmountRequest) -> dict[str, Any]:
        key = str(account_id)
        async with engine.begin() as connection:
            row = (
                await connection.execute(
                    select(accounts.c.balance, accounts.c.version).where(accounts.c.account_id == key).with_for_update()
                )
            ).first()
            if row is None:
                raise HTTPException(404, f"account {key} does not exist")
            balance, version = row.balance + body.amount, row.version + 1
            await connection.execute(
                update(accounts).where(accounts.c.account_id == key).values(balance=balance, version=version)
            )
            await connection.execute(
                insert(ledger).values(account_id=key, version=version, amount=body.amount, balance_after=balance)
            )
        return {"aggregate_id": key, "version": version, "balance": balance}

    return app


def app_from_environment() -> FastAPI:
    """The app as each of several uvicorn workers builds it (they import it by name)."""
    return create_app(os.environ["BENCH_DATABASE_URL"], int(os.environ["BENCH_POOL_SIZE"]))


async def create_tables(database_url: str) -> None:
    """Once, before the workers start: two workers creating them at once race in PostgreSQL's catalog."""
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=20, help="per worker")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (one per core: 2)")
    args = parser.parse_args()
    os.environ["BENCH_POOL_SIZE"] = str(args.pool_size)
    asyncio.run(create_tables(os.environ["BENCH_DATABASE_URL"]))
    options: dict[str, Any] = {"host": "127.0.0.1", "port": args.port, "loop": "uvloop", "http": "httptools"}
    if args.workers == 1:
        uvicorn.run(app_from_environment(), log_level="info", **options)
    else:
        target = "bench.crud_service:app_from_environment"
        uvicorn.run(target, factory=True, workers=args.workers, log_level="info", **options)


if __name__ == "__main__":
    main()
