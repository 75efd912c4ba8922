"""Peer: the `eventsourcing` library (PyPI) with its PostgreSQL persistence, behind the same HTTP layer.

    python -m bench.es_service --port PORT [--workers N]   (POSTGRES_* environment, see below)

An `Account` aggregate and a `Bank` application written the way the library's
documentation shows, persisted by `eventsourcing.postgres` (psycopg 3). The
library is synchronous, so the endpoints run its calls in FastAPI's thread
pool, which is what a user of it would do. A deposit reads the account's
events, applies the deposit and saves the new event; a concurrent save of the
same account fails with `IntegrityError` (optimistic concurrency) and is
retried. Library defaults otherwise: no snapshots, no aggregate cache.

Environment: PERSISTENCE_MODULE=eventsourcing.postgres, POSTGRES_DBNAME,
POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD,
POSTGRES_POOL_SIZE (set by the benchmark).
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

import uvicorn
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from fastapi import FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool

from bench.peer_bodies import AmountRequest, OpenAccountRequest

RETRIES = 20


class Account(Aggregate):
    @event("Opened")
    def __init__(self, owner: str, currency: str) -> None:
        self.owner = owner
        self.currency = currency
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int, reference: str | None = None) -> None:
        self.balance += amount


class Bank(Application[uuid.UUID]):
    def open_account(self, owner: str, currency: str) -> uuid.UUID:
        account = Account(owner, currency)
        self.save(account)
        return account.id

    def deposit(self, account_id: uuid.UUID, amount: int, reference: str | None) -> tuple[int, int]:
        for attempt in range(RETRIES):
            account: Account = self.repository.get(account_id)
            account.deposit(amount, reference)
            try:
                self.save(account)
            except IntegrityError:  # another deposit to this account won the race: read again
                if attempt == RETRIES - 1:
                    raise
                continue
            return account.version, account.balance
        raise AssertionError("unreachable")


def create_app() -> FastAPI:
    bank = Bank()
    app = FastAPI()

    @app.post("/accounts", status_code=201)
    async def open_account(body: OpenAccountRequest) -> dict[str, Any]:
        account_id = await run_in_threadpool(bank.open_account, body.owner, body.currency)
        return {"aggregate_id": str(account_id), "version": 1}

    @app.post("/accounts/{account_id}/deposits")
    async def deposit(account_id: uuid.UUID, body: AmountRequest) -> dict[str, Any]:
        try:
            version, balance = await run_in_threadpool(bank.deposit, account_id, body.amount, body.reference)
        except AggregateNotFoundError as error:
            raise HTTPException(404, f"account {account_id} does not exist") from error
        return {"aggregate_id": str(account_id), "version": version, "balance": balance}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (one per core: 2)")
    args = parser.parse_args()
    # The library creates its tables when an application starts: once here, then not by each worker
    # (two creating them at once race in PostgreSQL's catalog).
    Bank().close()
    os.environ["CREATE_TABLE"] = "no"
    options: dict[str, Any] = {"host": "127.0.0.1", "port": args.port, "loop": "uvloop", "http": "httptools"}
    if args.workers == 1:
        uvicorn.run(create_app(), log_level="info", **options)
    else:  # each worker builds its own application and connection pool (they import it by name)
        uvicorn.run("bench.es_service:create_app", factory=True, workers=args.workers, log_level="info", **options)


if __name__ == "__main__":
    main()
