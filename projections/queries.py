"""Read-side queries: every SQL a query endpoint runs, against the projections only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.accounts import NAME as ACCOUNT
from app.domain.conversations import NAME as CONVERSATION
from projections.tables import (
    accounts,
    checkpoints,
    command_status,
    conversations,
    event_log,
    failures,
    inbox,
    ledger,
    messages,
    messaging_accounts,
    projection_status,
)


async def account(connection: AsyncConnection, account_id: str) -> Row[Any] | None:
    return (await connection.execute(select(accounts).where(accounts.c.account_id == account_id))).first()


async def account_exists(connection: AsyncConnection, account_id: str) -> bool:
    found = await connection.scalar(select(accounts.c.account_id).where(accounts.c.account_id == account_id))
    return found is not None


async def transactions(
    connection: AsyncConnection, account_id: str, limit: int, before_version: int | None
) -> Sequence[Row[Any]]:
    """Newest first, keyset-paginated by version."""
    query = select(ledger).where(ledger.c.account_id == account_id)
    if before_version is not None:
        query = query.where(ledger.c.version < before_version)
    return (await connection.execute(query.order_by(ledger.c.version.desc()).limit(limit + 1))).all()


async def events(
    connection: AsyncConnection,
    *,
    aggregate_id: str | None,
    event_type: str | None,
    limit: int,
    after: tuple[int, int] | None,
) -> Sequence[Row[Any]]:
    """One aggregate's events by version, or all events by log position; keyset-paginated."""
    query = select(event_log)
    if aggregate_id is not None:
        query = query.where(event_log.c.aggregate_id == aggregate_id)
    if event_type is not None:
        query = query.where(event_log.c.type == event_type)
    if aggregate_id is not None:
        if after is not None:
            query = query.where(event_log.c.version > after[1])
        query = query.order_by(event_log.c.version)
    else:
        if after is not None:
            query = query.where(tuple_(event_log.c.partition, event_log.c.offset) > tuple_(*after))
        query = query.order_by(event_log.c.partition, event_log.c.offset)
    return (await connection.execute(query.limit(limit + 1))).all()


async def event(connection: AsyncConnection, event_id: str) -> Row[Any] | None:
    return (await connection.execute(select(event_log).where(event_log.c.event_id == event_id))).first()


async def command(connection: AsyncConnection, command_id: str) -> Row[Any] | None:
    return (await connection.execute(select(command_status).where(command_status.c.command_id == command_id))).first()


async def event_checkpoints(connection: AsyncConnection) -> dict[str, dict[int, int]]:
    """Projection → {partition: next offset} in the event log, for every projection."""
    result = await connection.execute(
        select(checkpoints.c.projection, checkpoints.c.partition, checkpoints.c.next_offset).where(
            checkpoints.c.topic == "events"
        )
    )
    found: dict[str, dict[int, int]] = {}
    for row in result:
        found.setdefault(row.projection, {})[row.partition] = row.next_offset
    return found


async def projection_overview(connection: AsyncConnection) -> dict[str, dict[str, Any]]:
    """Checkpoints, open failures and status of every projection that has run."""
    overview: dict[str, dict[str, Any]] = {}
    # The age by the database's clock, the one that stamped `updated_at`.
    age = func.extract("epoch", func.now() - checkpoints.c.updated_at).label("age_s")
    for row in await connection.execute(select(checkpoints, age).order_by(checkpoints.c.partition)):
        entry = overview.setdefault(
            row.projection,
            {"checkpoints": [], "failures": 0, "state": "running", "halted_reason": None, "rebuild": None},
        )
        entry["checkpoints"].append(
            {
                "topic": row.topic,
                "partition": row.partition,
                "next_offset": row.next_offset,
                "updated_at": row.updated_at,
                "age_s": None if row.age_s is None else float(row.age_s),
            }
        )
    open_counts = await connection.execute(
        select(failures.c.projection, func.count()).where(failures.c.status == "open").group_by(failures.c.projection)
    )
    for name, count in open_counts:
        overview.setdefault(name, {"checkpoints": [], "state": "running", "halted_reason": None, "rebuild": None})[
            "failures"
        ] = count
    for row in await connection.execute(select(projection_status)):
        entry = overview.setdefault(row.projection, {"checkpoints": [], "failures": 0})
        entry.update(state=row.state, halted_reason=row.halted_reason, rebuild=row.rebuild)
    return overview


# ---------------------------------------------------------------- messaging


async def messaging_account(connection: AsyncConnection, account_id: str) -> Row[Any] | None:
    return (
        await connection.execute(select(messaging_accounts).where(messaging_accounts.c.account_id == account_id))
    ).first()


async def known_accounts(connection: AsyncConnection, account_ids: Sequence[str]) -> dict[str, str | None]:
    """The accounts Messaging knows among `account_ids`, with the end user who holds each (or None)."""
    result = await connection.execute(
        select(messaging_accounts.c.account_id, messaging_accounts.c.holder).where(
            messaging_accounts.c.account_id.in_(account_ids)
        )
    )
    return {row.account_id: row.holder for row in result}


async def accounts_held_by(connection: AsyncConnection, holder: str) -> frozenset[str]:
    """The accounts an end user holds."""
    result = await connection.execute(select(accounts.c.account_id).where(accounts.c.holder == holder))
    return frozenset(str(account_id) for (account_id,) in result)


async def conversation(connection: AsyncConnection, conversation_id: str) -> Row[Any] | None:
    return (
        await connection.execute(select(conversations).where(conversations.c.conversation_id == conversation_id))
    ).first()


async def message(connection: AsyncConnection, message_id: str) -> Row[Any] | None:
    return (await connection.execute(select(messages).where(messages.c.message_id == message_id))).first()


async def conversation_messages(
    connection: AsyncConnection, conversation_id: str, limit: int, after: tuple[datetime, str] | None
) -> Sequence[Row[Any]]:
    """Delivered messages in delivery order, keyset-paginated."""
    query = select(messages).where(messages.c.conversation_id == conversation_id, messages.c.status == "delivered")
    if after is not None:
        query = query.where(tuple_(messages.c.delivered_at, messages.c.message_id) > typed_like(messages, after))
    query = query.order_by(messages.c.delivered_at, messages.c.message_id).limit(limit + 1)
    return (await connection.execute(query)).all()


async def inbox_page(
    connection: AsyncConnection, account_id: str, unread_only: bool, limit: int, before: tuple[datetime, str] | None
) -> Sequence[Any]:
    """Messages delivered to an account, newest first, with their read state."""
    query = (
        select(
            inbox.c.message_id,
            inbox.c.conversation_id,
            inbox.c.sender,
            inbox.c.delivered_at,
            inbox.c.read_at,
            messages.c.body,
            messages.c.price,
            messages.c.currency,
        )
        .join(messages, messages.c.message_id == inbox.c.message_id)
        .where(inbox.c.account_id == account_id)
    )
    if unread_only:
        query = query.where(inbox.c.read_at.is_(None))
    if before is not None:
        query = query.where(tuple_(inbox.c.delivered_at, inbox.c.message_id) < typed_like(inbox, before))
    query = query.order_by(inbox.c.delivered_at.desc(), inbox.c.message_id.desc()).limit(limit + 1)
    return (await connection.execute(query)).all()


def typed_like(table: Table, key: tuple[datetime, str]) -> Any:
    """A (delivered_at, message_id) key bound with the columns' own types: bare values in a
    tuple bind as text, and PostgreSQL has no `uuid < varchar`."""
    return tuple_(
        literal(key[0], table.c.delivered_at.type),
        literal(key[1], table.c.message_id.type),
    )


# ---------------------------------------------------------------- privacy


async def subject_kind(connection: AsyncConnection, subject_id: str) -> str | None:
    """Which aggregate a data subject's id names ("Account" or "Conversation"), None when neither
    read model knows it. Both are ids the API made (uuids), so one id never names both."""
    if await account_exists(connection, subject_id):
        return ACCOUNT
    if await conversation(connection, subject_id) is not None:
        return CONVERSATION
    return None


# ---------------------------------------------------------------- time travel


async def aggregate_events_until(
    connection: AsyncConnection, aggregate_id: str, version: int | None = None
) -> Sequence[Row[Any]]:
    """One aggregate's events in version order, up to a version (inclusive) when one is given."""
    query = select(event_log).where(event_log.c.aggregate_id == aggregate_id)
    if version is not None:
        query = query.where(event_log.c.version <= version)
    return (await connection.execute(query.order_by(event_log.c.version))).all()


async def charge_events(connection: AsyncConnection, account_id: str, reference: str) -> Sequence[Row[Any]]:
    """An account's events that carry a charge reference (charged, declined, refunded), in version order."""
    query = select(event_log).where(
        event_log.c.aggregate_id == account_id, event_log.c.data["reference"].astext == reference
    )
    return (await connection.execute(query.order_by(event_log.c.version))).all()


async def pending_payments(connection: AsyncConnection, alert_after_s: float) -> dict[str, Any]:
    """Messages waiting for their payment: how many, the oldest's age and how many waited past
    `alert_after_s` (ages by the database's clock, the one the projector stamps rows with)."""
    age = func.extract("epoch", func.now() - messages.c.submitted_at)
    row = (
        await connection.execute(
            select(
                func.count(),
                func.max(age),
                func.count().filter(age > alert_after_s),
            ).where(messages.c.status == "pending_payment")
        )
    ).one()
    return {"pending": row[0], "oldest_pending_s": None if row[1] is None else float(row[1]), "over_alert": row[2]}


async def oldest_pending(connection: AsyncConnection, limit: int) -> Sequence[Row[Any]]:
    """The messages waiting longest for their payment, with how long (by the database's clock)."""
    waiting = func.extract("epoch", func.now() - messages.c.submitted_at).label("waiting_s")
    query = (
        select(messages.c.message_id, messages.c.sender, messages.c.price, messages.c.submitted_at, waiting)
        .where(messages.c.status == "pending_payment")
        .order_by(messages.c.submitted_at)
        .limit(limit)
    )
    return (await connection.execute(query)).all()
