"""The Message aggregate: submitted at its tariff's price, then delivered or rejected by the payment saga."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Final, Literal, assert_never

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StringConstraints, model_validator

from .base import Command, Event
from .errors import (
    AggregateAlreadyExists,
    MessageNotDelivered,
    MessageNotFound,
    MessageNotPending,
    NotARecipient,
)
from .kind import AggregateKind
from .messaging import MAX_RECIPIENTS, AccountId, distinct
from .money import Currency
from .personal import Personal
from .text import is_unprintable, visible

NAME: Final = "Message"

MAX_BODY_LENGTH: Final = 4000
MAX_FEE: Final = 10**9


# --- Vocabulary ---------------------------------------------------------------------


def _message_text(text: str) -> str:
    # A body is kept exactly as written (leading spaces, line breaks) but must say something.
    if not text.strip():
        raise ValueError("must not be blank")
    if any(is_unprintable(char, "\t\n\r") for char in text):
        raise ValueError("must not contain control characters other than tab and line breaks")
    return text


# Length counts characters (code points), not bytes: 4000 emoji are a valid body.
Body = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=MAX_BODY_LENGTH),
    AfterValidator(_message_text),
    AfterValidator(visible),
]

Reason = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=500, strip_whitespace=True),
]

Recipients = Annotated[
    list[AccountId],
    Strict(),
    Field(min_length=1, max_length=MAX_RECIPIENTS),
    AfterValidator(distinct),
]

Fee = Annotated[int, Field(ge=0, le=MAX_FEE, strict=True)]


class Tariff(BaseModel):
    """What a message costs, in minor units of the sender's currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_fee: Fee
    fee_per_recipient: Fee

    def price(self, recipients: int) -> int:
        if recipients < 0:
            raise ValueError(f"recipient count must not be negative: {recipients}")
        return self.base_fee + self.fee_per_recipient * recipients


DEFAULT_TARIFF: Final = Tariff(base_fee=5, fee_per_recipient=2)


# --- Commands and events ------------------------------------------------------------


class SubmitMessage(Command):
    type: Literal["SubmitMessage"] = "SubmitMessage"
    conversation_id: AccountId
    sender: AccountId
    recipients: Recipients
    body: Annotated[Body, Personal("sender")]
    currency: Currency
    tariff: Tariff

    @model_validator(mode="after")
    def _sender_is_not_a_recipient(self) -> SubmitMessage:
        if self.sender in self.recipients:
            raise ValueError("recipients must not include the sender")
        return self


class DeliverMessage(Command):
    type: Literal["DeliverMessage"] = "DeliverMessage"


class RejectMessage(Command):
    type: Literal["RejectMessage"] = "RejectMessage"
    reason: Reason


class MarkRead(Command):
    type: Literal["MarkRead"] = "MarkRead"
    reader: AccountId


MessageCommand = Annotated[
    SubmitMessage | DeliverMessage | RejectMessage | MarkRead,
    Field(discriminator="type"),
]


# Plain str/int fields: stored facts must load even if command rules tighten later.
class MessageSubmitted(Event):
    type: Literal["MessageSubmitted"] = "MessageSubmitted"
    conversation_id: str
    sender: str
    recipients: list[str]
    body: Annotated[str, Personal("sender")]
    # Fixed at submission, so a later tariff change never alters what this message costs.
    price: int
    currency: str


class MessageDelivered(Event):
    """Carries who it went to, so an inbox can be built from this event alone."""

    type: Literal["MessageDelivered"] = "MessageDelivered"
    conversation_id: str
    sender: str
    recipients: list[str]


class MessageRejected(Event):
    type: Literal["MessageRejected"] = "MessageRejected"
    reason: str


class MessageRead(Event):
    type: Literal["MessageRead"] = "MessageRead"
    reader: str


MessageEvent = Annotated[
    MessageSubmitted | MessageDelivered | MessageRejected | MessageRead,
    Field(discriminator="type"),
]


# --- State --------------------------------------------------------------------------

MessageStatus = Literal["pending_payment", "delivered", "rejected"]


@dataclass(frozen=True, slots=True)
class Message:
    conversation_id: str
    sender: str
    recipients: tuple[str, ...]
    price: int
    currency: str
    status: MessageStatus = "pending_payment"
    # Set only when rejected: why the payment failed.
    reason: str | None = None
    read_by: frozenset[str] = frozenset()


# --- Decide -------------------------------------------------------------------------


def decide(state: Message | None, command: MessageCommand) -> list[MessageEvent]:
    match command:
        case SubmitMessage():
            return _submit(state, command)
        case DeliverMessage():
            return _deliver(_existing(state))
        case RejectMessage():
            return _reject(_existing(state), command)
        case MarkRead():
            return _mark_read(_existing(state), command)
        case _:
            assert_never(command)


def _existing(state: Message | None) -> Message:
    if state is None:
        raise MessageNotFound()
    return state


def _submit(state: Message | None, command: SubmitMessage) -> list[MessageEvent]:
    if state is not None:
        raise AggregateAlreadyExists(aggregate_type=NAME)
    return [
        MessageSubmitted(
            conversation_id=command.conversation_id,
            sender=command.sender,
            recipients=list(command.recipients),
            body=command.body,
            price=command.tariff.price(len(command.recipients)),
            currency=command.currency,
        )
    ]


# Delivery and rejection are idempotent because the payment saga may redeliver its
# command; what is never allowed is flipping a settled outcome the other way.
def _deliver(state: Message) -> list[MessageEvent]:
    match state.status:
        case "pending_payment":
            return [
                MessageDelivered(
                    conversation_id=state.conversation_id, sender=state.sender, recipients=list(state.recipients)
                )
            ]
        case "delivered":
            return []
        case "rejected":
            raise MessageNotPending(message_status=state.status)
        case _:
            assert_never(state.status)


def _reject(state: Message, command: RejectMessage) -> list[MessageEvent]:
    match state.status:
        case "pending_payment":
            return [MessageRejected(reason=command.reason)]
        case "rejected":
            return []
        case "delivered":
            raise MessageNotPending(message_status=state.status)
        case _:
            assert_never(state.status)


def _mark_read(state: Message, command: MarkRead) -> list[MessageEvent]:
    # Recipient first: someone outside the message learns nothing about its status.
    if command.reader not in state.recipients:
        raise NotARecipient(reader=command.reader)
    if state.status != "delivered":
        raise MessageNotDelivered(message_status=state.status)
    if command.reader in state.read_by:
        return []
    return [MessageRead(reader=command.reader)]


# --- Evolve -------------------------------------------------------------------------


def evolve(state: Message | None, event: MessageEvent) -> Message:
    match event:
        case MessageSubmitted():
            return Message(
                conversation_id=event.conversation_id,
                sender=event.sender,
                recipients=tuple(event.recipients),
                price=event.price,
                currency=event.currency,
            )
        case MessageDelivered():
            return replace(_submitted(state, event), status="delivered")
        case MessageRejected():
            return replace(_submitted(state, event), status="rejected", reason=event.reason)
        case MessageRead():
            submitted = _submitted(state, event)
            return replace(submitted, read_by=submitted.read_by | {event.reader})
        case _:
            assert_never(event)


def _submitted(state: Message | None, event: Event) -> Message:
    # Not a business rule: a stream whose first event is not MessageSubmitted is corrupt.
    if state is None:
        raise ValueError(f"{type(event).__name__} cannot apply before MessageSubmitted")
    return state


# --- Snapshot serde -----------------------------------------------------------------

SNAPSHOT_VERSION: Final = 1


class _MessageSnapshot(BaseModel):
    # Strict: a snapshot is our own output, so any coercion would hide corruption.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    snapshot_version: Literal[1]
    conversation_id: str
    sender: str
    recipients: list[str]
    price: int
    currency: str
    status: MessageStatus
    reason: str | None
    read_by: list[str]


def snapshot(state: Message) -> dict[str, object]:
    """JSON-safe dict; read_by is sorted so equal states give equal snapshots."""
    return {
        "snapshot_version": SNAPSHOT_VERSION,
        "conversation_id": state.conversation_id,
        "sender": state.sender,
        "recipients": list(state.recipients),
        "price": state.price,
        "currency": state.currency,
        "status": state.status,
        "reason": state.reason,
        "read_by": sorted(state.read_by),
    }


def restore(data: Mapping[str, object]) -> Message:
    parsed = _MessageSnapshot.model_validate(dict(data))
    return Message(
        conversation_id=parsed.conversation_id,
        sender=parsed.sender,
        recipients=tuple(parsed.recipients),
        price=parsed.price,
        currency=parsed.currency,
        status=parsed.status,
        reason=parsed.reason,
        read_by=frozenset(parsed.read_by),
    )


KIND: Final[AggregateKind[Message, MessageCommand, MessageEvent]] = AggregateKind(
    name=NAME,
    command_union=MessageCommand,
    event_union=MessageEvent,
    decide=decide,
    evolve=evolve,
    snapshot=snapshot,
    restore=restore,
)
