"""Read model `messaging_accounts`: the accounts as the Messaging service needs them.

Built from the Payments events themselves (event-carried state transfer): the
Messaging service checks that participants exist, learns the sender's
currency and which end user holds an account, without calling Payments.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.accounts import NAME, AccountOpened
from projections.base import Message, Projection
from projections.personal import erased_unless_null, forgotten_of
from projections.tables import messaging_accounts


async def apply(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    rows = [
        {"account_id": m.event.aggregate_id, "currency": opened.currency, "holder": opened.holder}
        for m in messages
        if isinstance(opened := m.fact, AccountOpened)
    ]
    if rows:
        await connection.execute(insert(messaging_accounts).on_conflict_do_nothing(), rows)
    for account_id in forgotten_of(messages, NAME):
        await connection.execute(
            update(messaging_accounts)
            .where(messaging_accounts.c.account_id == account_id)
            .values(holder=erased_unless_null(messaging_accounts.c.holder))
        )


PROJECTION = Projection(name="messaging_accounts", tables=(messaging_accounts,), apply=apply)
