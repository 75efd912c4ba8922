"""Read model `conversations`: who takes part in each conversation."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.conversations import NAME, ConversationStarted
from projections.base import Message, Projection, occurred_at
from projections.personal import erased_unless_null, forgotten_of
from projections.tables import conversations


async def apply(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    rows = [
        {
            "conversation_id": m.event.aggregate_id,
            "title": started.title,
            "participants": started.participants,
            "started_at": occurred_at(m.event),
        }
        for m in messages
        if isinstance(started := m.fact, ConversationStarted)
    ]
    if rows:
        await connection.execute(insert(conversations).on_conflict_do_nothing(), rows)
    for conversation_id in forgotten_of(messages, NAME):
        await connection.execute(
            update(conversations)
            .where(conversations.c.conversation_id == conversation_id)
            .values(title=erased_unless_null(conversations.c.title))
        )


PROJECTION = Projection(name="conversations", tables=(conversations,), apply=apply)
