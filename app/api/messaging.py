"""The Messaging service over HTTP: conversations, paid messages, inboxes, pricing.

It knows accounts only through its own read model (`messaging_accounts`, built
from Payments' events): whether a participant exists and in which currency a
sender pays. It never calls Payments; the payment saga connects the two.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from app.api.cursors import decode_timeline, encode_timeline
from app.api.errors import Problem, not_found, problem_doc
from app.api.lean_routes import LeanRoute
from app.api.queries import (
    QUERY_RESPONSES,
    ConsistentWith,
    Cursor,
    Limit,
    read_model,
    reading,
)
from app.api.schemas import (
    CommandAccepted,
    ConversationStartedResponse,
    InboxItem,
    InboxPage,
    MarkReadRequest,
    MessageAcceptedResponse,
    MessagePage,
    MessageView,
    Pricing,
    StartConversationRequest,
    SubmitMessageRequest,
)
from app.api.security import require
from app.api.state import app_state, clients
from app.api.submission import COMMAND_RESPONSES, BusDep, CommandContextDep, pending, submit
from app.api.submission import decide as decide_command
from app.config import Settings
from app.domain import conversations, messages
from app.eventstore import position
from projections import queries

router = APIRouter(tags=["messaging"], route_class=LeanRoute)  # lean_routes.py


def tariff(settings: Settings) -> messages.Tariff:
    return messages.Tariff(base_fee=settings.message_base_fee, fee_per_recipient=settings.message_fee_per_recipient)


# The router is mounted behind the reader role (main.py); commands also need the writer role.
WRITER = require("writer")


def not_your_account(detail: str) -> Problem:
    return Problem(403, "not-your-account", "Not your account", detail=detail)


async def holders_of(
    request: Request, account_ids: list[str], consistent_with: str | None = None
) -> dict[str, str | None]:
    """The accounts Messaging knows among these, with who holds each. The connection goes back to
    the pool before any command is sent: no reading while it is decided."""
    async with read_model(request, "messaging_accounts", consistent_with) as db:
        known = await queries.known_accounts(db, account_ids)
    if set(account_ids) - known.keys():
        # Not known yet may be just opened: catch up with Payments' events before saying unknown.
        await clients(request).consistency.caught_up_with_the_log("messaging_accounts")
        async with read_model(request) as db:
            known = await queries.known_accounts(db, account_ids)
    return known


async def takes_part(request: Request, db: AsyncConnection, account_ids: list[str]) -> bool:
    """A service key sees everything; an end user only what one of their accounts takes part in."""
    user = getattr(request.state, "user", None)
    return user is None or user in (await queries.known_accounts(db, account_ids)).values()


@router.get("/pricing", response_model=Pricing)
async def pricing(request: Request) -> Pricing:
    """The tariff: what a message costs its sender."""
    current = tariff(app_state(request).settings)
    return Pricing(base_fee=current.base_fee, fee_per_recipient=current.fee_per_recipient)


@router.post(
    "/conversations",
    status_code=201,
    response_model=ConversationStartedResponse,
    responses=COMMAND_RESPONSES,
    dependencies=[WRITER],
)
async def start_conversation(
    body: StartConversationRequest,
    request: Request,
    bus: BusDep,
    context: CommandContextDep,
    consistent_with: ConsistentWith = None,
) -> JSONResponse:
    """Start a conversation between 2 to 50 existing accounts."""
    known = await holders_of(request, body.participants, consistent_with)
    unknown = sorted(set(body.participants) - known.keys())
    if unknown:
        raise Problem(
            422,
            "unknown-participants",
            "Unknown participants",
            detail=f"no such accounts: {', '.join(unknown)}",
            unknown=unknown,
        )
    if context.user is not None and context.user not in known.values():
        raise not_your_account("a conversation you start must include one of your accounts")
    conversation_id = context.new_id("conversation")
    command = context.envelope(
        conversations.StartConversation(participants=body.participants, title=body.title),
        conversation_id,
    )
    result = await decide_command(bus, command, context.waits)
    if result is None:
        return pending(command)
    started = ConversationStartedResponse(
        conversation_id=conversation_id,
        command_id=result.command_id,
        version=result.version,
        position=position.encode(result.position),
    )
    return JSONResponse(
        started.model_dump(), status_code=201, headers={"Location": f"/conversations/{conversation_id}"}
    )


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=202,
    response_model=MessageAcceptedResponse,
    responses={**COMMAND_RESPONSES, 403: problem_doc("The sender is not a participant")},
    dependencies=[WRITER],
)
async def submit_message(
    conversation_id: uuid.UUID,
    body: SubmitMessageRequest,
    request: Request,
    bus: BusDep,
    context: CommandContextDep,
    consistent_with: ConsistentWith = None,
) -> JSONResponse:
    """Post a message; it is priced now and delivered once the sender has paid for it."""
    async with read_model(request, ("conversations", "messaging_accounts"), consistent_with) as db:
        conversation = await queries.conversation(db, str(conversation_id))
        account = await queries.messaging_account(db, body.sender)
    if conversation is None or account is None:
        # A conversation just started, a sender just opened: catch up before saying either is missing.
        await clients(request).consistency.caught_up_with_the_log(("conversations", "messaging_accounts"))
        async with read_model(request) as db:
            conversation = await queries.conversation(db, str(conversation_id))
            account = await queries.messaging_account(db, body.sender)
    if conversation is None:
        raise not_found("conversation", conversation_id)
    if context.user is not None and (account is None or account.holder != context.user):
        raise not_your_account("you may post only as one of your own accounts")
    if body.sender not in conversation.participants:
        raise Problem(
            403, "not-a-participant", "Not a participant", detail="only the conversation's participants may post to it"
        )
    if account is None:
        raise Problem(422, "unknown-participants", "Unknown sender", detail=f"no account {body.sender}")
    recipients = [p for p in conversation.participants if p != body.sender]
    current = tariff(app_state(request).settings)
    message_id = context.new_id("message")
    command = context.envelope(
        messages.SubmitMessage(
            conversation_id=str(conversation_id),
            sender=body.sender,
            recipients=recipients,
            body=body.body,
            currency=account.currency,
            tariff=current,
        ),
        message_id,
    )
    result = await decide_command(bus, command, context.waits)
    accepted = MessageAcceptedResponse(
        message_id=message_id,
        command_id=command.command_id,
        price=current.price(len(recipients)),
        currency=account.currency,
        position=position.encode(result.position) if result else "",
    )
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": f"/messages/{message_id}"})


@router.post(
    "/messages/{message_id}/read", response_model=CommandAccepted, responses=COMMAND_RESPONSES, dependencies=[WRITER]
)
async def mark_read(
    message_id: uuid.UUID, body: MarkReadRequest, request: Request, bus: BusDep, context: CommandContextDep
) -> JSONResponse:
    """Mark a delivered message as read by one of its recipients."""
    if context.user is not None and await holders_of(request, [body.reader]) != {body.reader: context.user}:
        raise not_your_account("you may mark messages read only for your own accounts")
    command = context.envelope(messages.MarkRead(reader=body.reader), str(message_id))
    return await submit(bus, command, context.waits)


@router.get("/messages/{message_id}", response_model=MessageView, responses=QUERY_RESPONSES)
async def get_message(
    message_id: uuid.UUID, request: Request, db: Annotated[AsyncConnection, reading("messages")]
) -> Any:
    """A message and its payment status: pending_payment, delivered or rejected (with the reason)."""
    row = await queries.message(db, str(message_id))
    if row is None or not await takes_part(request, db, [row.sender, *row.recipients]):
        raise not_found("message", message_id)  # to an end user, another's message does not exist
    return MessageView.model_validate(row._mapping)


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=MessagePage,
    responses=QUERY_RESPONSES,
)
async def conversation_messages(
    conversation_id: uuid.UUID,
    request: Request,
    db: Annotated[AsyncConnection, reading("messages", "conversations")],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    """The conversation's delivered messages, in delivery order."""
    after = decode_timeline(cursor)
    found = await queries.conversation(db, str(conversation_id))
    if found is None or not await takes_part(request, db, found.participants):
        raise not_found("conversation", conversation_id)  # to an end user, one they are not in does not exist
    rows = await queries.conversation_messages(db, str(conversation_id), limit, after)
    items = [MessageView.model_validate(row._mapping) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return MessagePage(items=items, next_cursor=encode_timeline(last.delivered_at, last.message_id) if last else None)


@router.get("/accounts/{account_id}/inbox", response_model=InboxPage, responses=QUERY_RESPONSES)
async def account_inbox(
    account_id: uuid.UUID,
    db: Annotated[AsyncConnection, reading("messages")],
    unread_only: Annotated[bool, Query()] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    """Messages delivered to this account by others, newest first, with their read flag."""
    rows = await queries.inbox_page(db, str(account_id), unread_only, limit, decode_timeline(cursor))
    items = [InboxItem(**row._mapping, read=row.read_at is not None) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return InboxPage(items=items, next_cursor=encode_timeline(last.delivered_at, last.message_id) if last else None)
