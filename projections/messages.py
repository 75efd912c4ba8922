"""Read models `messages` and `inbox`: each message's payment status, and who received what.

A delivered message lands in each recipient's inbox; `MessageDelivered`
carries the recipients (event-carried state), so no lookup is needed. Status
updates are guarded by version, so a replayed event never moves a message back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.accounts import NAME as ACCOUNT
from app.domain.messages import MessageDelivered, MessageRead, MessageRejected, MessageSubmitted
from app.privacy.sealing import ERASED
from projections.base import Message, Projection, occurred_at
from projections.personal import forgotten_of
from projections.tables import inbox, messages


async def apply(connection: AsyncConnection, batch: Sequence[Message]) -> None:
    submitted: dict[str, dict[str, Any]] = {}
    settled: dict[str, dict[str, Any]] = {}
    delivered: list[dict[str, Any]] = []
    read: list[dict[str, Any]] = []
    for message in batch:
        event = message.event
        at = occurred_at(event)
        match fact := message.fact:
            case MessageSubmitted():
                submitted[event.aggregate_id] = _submitted(event.aggregate_id, fact, event.version, at)
            case MessageDelivered() | MessageRejected():
                change = _settled(fact, event.version, at)
                if event.aggregate_id in submitted:
                    submitted[event.aggregate_id].update(change)
                else:
                    settled[event.aggregate_id] = {
                        "b_id": event.aggregate_id,
                        **{f"b_{k}": v for k, v in change.items()},
                    }
                if isinstance(fact, MessageDelivered):
                    delivered += _inbox_rows(event.aggregate_id, fact, at)
            case MessageRead(reader=reader):
                read.append({"b_account": reader, "b_id": event.aggregate_id, "b_at": at})
    if submitted:
        await connection.execute(insert(messages).on_conflict_do_nothing(), list(submitted.values()))
    if settled:
        await connection.execute(SETTLE, list(settled.values()))
    if delivered:
        await connection.execute(insert(inbox).on_conflict_do_nothing(), delivered)
    if read:
        await connection.execute(MARK_READ, read)
    for sender in forgotten_of(batch, ACCOUNT):
        # The body is its sender's (docs/privacy.md); what others wrote to them stays.
        await connection.execute(update(messages).where(messages.c.sender == sender).values(body=ERASED))


def _submitted(message_id: str, fact: MessageSubmitted, version: int, at: object) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "conversation_id": fact.conversation_id,
        "sender": fact.sender,
        "recipients": fact.recipients,
        "body": fact.body,
        "price": fact.price,
        "currency": fact.currency,
        "status": "pending_payment",
        "reason": None,
        "version": version,
        "submitted_at": at,
        "delivered_at": None,
    }


def _settled(fact: MessageDelivered | MessageRejected, version: int, at: object) -> dict[str, Any]:
    if isinstance(fact, MessageDelivered):
        return {"status": "delivered", "reason": None, "version": version, "delivered_at": at}
    return {"status": "rejected", "reason": fact.reason, "version": version, "delivered_at": None}


def _inbox_rows(message_id: str, fact: MessageDelivered, at: object) -> list[dict[str, Any]]:
    return [
        {
            "account_id": recipient,
            "message_id": message_id,
            "conversation_id": fact.conversation_id,
            "sender": fact.sender,
            "delivered_at": at,
            "read_at": None,
        }
        for recipient in fact.recipients
    ]


SETTLE = (
    update(messages)
    .where(messages.c.message_id == bindparam("b_id"), messages.c.version < bindparam("b_version"))
    .values(
        status=bindparam("b_status"),
        reason=bindparam("b_reason"),
        version=bindparam("b_version"),
        delivered_at=bindparam("b_delivered_at"),
    )
)

MARK_READ = (
    update(inbox)
    .where(
        and_(
            inbox.c.account_id == bindparam("b_account"),
            inbox.c.message_id == bindparam("b_id"),
            inbox.c.read_at.is_(None),
        )
    )
    .values(read_at=bindparam("b_at"))
)

PROJECTION = Projection(name="messages", tables=(messages, inbox), apply=apply)
