"""Query endpoints: they read PostgreSQL projections only, never Kafka or the processor."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import takewhile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import AsyncConnection

from app.api import cursors
from app.api.errors import Problem, not_found, problem_doc
from app.api.lean_routes import LeanRoute
from app.api.schemas import AccountView, CommandStatus, EventPage, EventView, Transaction, TransactionPage
from app.api.state import clients
from app.api.time_travel import account_as_it_was
from app.db import is_outage
from app.domain.registry import ACCOUNT
from projections import queries

router = APIRouter(tags=["queries"], route_class=LeanRoute)  # lean_routes.py: the account read

ConsistentWith = Annotated[
    str | None,
    Header(
        alias="X-Consistent-With",
        max_length=2000,
        description="A `position` from a command: wait (bounded) until this read model reflects it.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")]

QUERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Invalid cursor or X-Consistent-With"),
    404: problem_doc("Not found"),
    422: problem_doc("Invalid request"),
    503: problem_doc("The read model has not caught up with X-Consistent-With in time"),
}


@asynccontextmanager
async def read_model(
    request: Request, projections: str | tuple[str, ...] = (), consistent_with: str | None = None
) -> AsyncIterator[AsyncConnection]:
    """A connection for reading only (queries never write), lent once `projections` reflect
    `consistent_with`. Waiting comes first, so a waiting request holds none of the pool's connections."""
    open_clients = clients(request)
    await open_clients.consistency.wait(projections, consistent_with)
    connection = await open_clients.engine.connect()
    try:
        yield connection
    finally:
        try:
            await connection.close()
        except Exception as error:
            # Nothing to lose on a read-only connection that died with the database; the
            # answer (a 503 if the query failed too) is already on its way.
            if not is_outage(error):
                raise


def reading(*projections: str) -> Any:
    """A dependency: `read_model` of these projections, honouring the request's X-Consistent-With."""

    async def dependency(request: Request, consistent_with: ConsistentWith = None) -> AsyncIterator[AsyncConnection]:
        async with read_model(request, projections, consistent_with) as connection:
            yield connection

    return Depends(dependency)


ReadDep = Annotated[AsyncConnection, reading()]


AsOf = Annotated[
    AwareDatetime | None,
    Query(description="RFC 3339 time with its offset: the account as it was then, folded from its events."),
]
AtVersion = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="The account as it was at this version.")]


@router.get("/accounts/{account_id}", response_model=AccountView, responses=QUERY_RESPONSES)
async def get_account(
    account_id: uuid.UUID,
    request: Request,
    consistent_with: ConsistentWith = None,
    as_of: AsOf = None,
    version: AtVersion = None,
) -> Response:
    """An account's owner, currency, balance and version (also as ETag); with `as_of` or `version`,
    as it was then (app/api/time_travel.py)."""
    if as_of is not None and version is not None:
        raise Problem(400, "ambiguous-time", "Ambiguous time", detail="ask for as_of or for version, not both")
    if as_of is None and version is None:
        async with read_model(request, "accounts", consistent_with) as db:
            row = await queries.account(db, str(account_id))
        if row is None:
            raise not_found("account", account_id)
        return with_etag(AccountView.model_validate(row._mapping))
    async with read_model(request, "event_log", consistent_with) as db:
        rows = [row._mapping for row in await queries.aggregate_events_until(db, str(account_id), version)]
    if as_of is not None:
        rows = list(takewhile(lambda row: row["occurred_at"] <= as_of, rows))
    if version is not None and (not rows or rows[-1]["version"] != version):
        rows = []  # no such version (yet)
    if rows and rows[0]["aggregate_type"] != ACCOUNT.name:
        rows = []  # the id of something else
    account = account_as_it_was(rows)
    if account is None:
        what = f"version {version}" if version is not None else f"as of {as_of.isoformat() if as_of else ''}"
        raise Problem(404, "not-found", "Not found", detail=f"account {account_id} has no {what}")
    return with_etag(account)


def with_etag(account: AccountView) -> Response:
    """The account as JSON with its version as ETag. The route returns a Response of its own, not
    the model, so it takes the lean path (lean_routes.py): the read a client makes after each command."""
    return Response(account.model_dump_json(), media_type="application/json", headers={"ETag": f'"{account.version}"'})


@router.get("/accounts/{account_id}/transactions", response_model=TransactionPage, responses=QUERY_RESPONSES)
async def get_transactions(
    account_id: uuid.UUID, db: Annotated[AsyncConnection, reading("ledger")], limit: Limit = 50, cursor: Cursor = None
) -> Any:
    """An account's money movements, newest first."""
    before = cursors.LEDGER.decode(cursor)[0] if cursor else None
    rows = await queries.transactions(db, str(account_id), limit, before)
    if not rows and not await queries.account_exists(db, str(account_id)):
        raise not_found("account", account_id)
    items = [Transaction.model_validate(row._mapping) for row in rows[:limit]]
    next_cursor = cursors.LEDGER.encode(items[-1].version) if len(rows) > limit else None
    return TransactionPage(items=items, next_cursor=next_cursor)


@router.get("/events", response_model=EventPage, responses=QUERY_RESPONSES)
async def list_events(
    db: Annotated[AsyncConnection, reading("event_log")],
    aggregate_id: uuid.UUID | None = None,
    type: Annotated[str | None, Query(max_length=100, pattern="^[A-Za-z0-9_.:-]+$")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Any:
    """Events of one aggregate by version, or of all aggregates by log position."""
    kind = cursors.EVENTS_BY_POSITION if aggregate_id is None else cursors.EVENTS_BY_VERSION
    after = kind.decode(cursor) if cursor else None
    rows = await queries.events(
        db,
        aggregate_id=str(aggregate_id) if aggregate_id else None,
        event_type=type,
        limit=limit,
        after=(after[0], after[1]) if after else None,
    )
    items = [event_view(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = kind.encode(last.partition, last.offset if aggregate_id is None else last.version)
    return EventPage(items=items, next_cursor=next_cursor)


@router.get("/events/{event_id}", response_model=EventView, responses=QUERY_RESPONSES)
async def get_event(event_id: uuid.UUID, db: ReadDep) -> Any:
    """One event's full envelope (what a notification links to)."""
    row = await queries.event(db, str(event_id))
    if row is None:
        raise not_found("event", event_id)
    return event_view(row)


@router.get("/commands/{command_id}", response_model=CommandStatus, responses=QUERY_RESPONSES)
async def get_command(command_id: uuid.UUID, db: ReadDep) -> Any:
    """What became of a command: accepted, succeeded (version, position) or rejected (problem)."""
    row = await queries.command(db, str(command_id))
    if row is None:
        raise not_found("command", command_id, known_yet=True)
    return CommandStatus.model_validate(row._mapping)


def event_view(row: Any) -> EventView:
    values = dict(row._mapping)
    values["position"] = f"{values.pop('partition')}:{values.pop('offset')}"
    return EventView.model_validate(values)
