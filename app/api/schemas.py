"""Request and response bodies of the HTTP API.

Text and id fields use the domain's own types, so a request is refused for exactly
what would make its command invalid; only the wrapping (extra fields, examples) is HTTP's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain.conversations import Participants, Title
from app.domain.messages import Body as MessageBody
from app.domain.messaging import AccountId
from app.domain.money import Amount, Currency, Owner, Reference


class Body(BaseModel):
    # A misspelt field is a client bug: refuse it instead of silently dropping it.
    model_config = ConfigDict(extra="forbid")


class OpenAccountRequest(Body):
    owner: Owner = Field(examples=["Ada Lovelace"])
    currency: Currency = Field(examples=["EUR"])


class AmountRequest(Body):
    amount: Amount = Field(description="Minor units (cents for EUR), 1 to 10^12.", examples=[1500])
    reference: Reference | None = Field(default=None, examples=["invoice-2026-001"])


class CommandAccepted(BaseModel):
    """The command was decided and its events are stored."""

    command_id: str
    aggregate_id: str
    version: int = Field(description="The aggregate's version after the command.")
    position: str = Field(description="Consistency token: send it as X-Consistent-With to read your own write.")


class CommandPending(BaseModel):
    """The command is stored but not decided yet: poll its Location."""

    command_id: str
    aggregate_id: str
    status: Literal["accepted"] = "accepted"


class AccountView(BaseModel):
    account_id: str
    owner: str
    currency: str
    balance: int = Field(description="Minor units.")
    version: int
    created_at: datetime
    updated_at: datetime


class Transaction(BaseModel):
    version: int
    kind: Literal["deposit", "withdrawal", "charge", "refund"]
    amount: int
    balance_after: int
    reference: str | None
    occurred_at: datetime


class TransactionPage(BaseModel):
    items: list[Transaction]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class EventView(BaseModel):
    """The full event envelope, as stored on `<ns>.events`."""

    event_id: str
    type: str
    schema_version: int
    aggregate_type: str
    aggregate_id: str
    version: int
    occurred_at: datetime
    command_id: str
    correlation_id: str
    causation_id: str
    data: dict[str, Any]
    principal: str = Field(
        description="Who caused it (the audit trail): the API key's name, `anonymous` in development, "
        "`saga` for the payment saga's steps; empty for events older than the audit trail. Never set by a client."
    )
    position: str = Field(description="partition:offset of the event on `<ns>.events`.")


class EventPage(BaseModel):
    items: list[EventView]
    next_cursor: str | None


class CommandStatus(BaseModel):
    command_id: str
    aggregate_id: str
    command_type: str | None
    status: Literal["accepted", "succeeded", "rejected"]
    version: int | None = None
    position: str | None = None
    problem: dict[str, Any] | None = None
    accepted_at: datetime | None = None
    decided_at: datetime | None = None


class PartitionProgress(BaseModel):
    topic: str
    partition: int
    next_offset: int
    end_offset: int | None
    lag: int | None
    checkpoint_age_s: float | None = Field(
        default=None, description="Seconds since the checkpoint last moved (None: never checkpointed)."
    )
    stalled: bool = Field(default=False, description="Events wait and the checkpoint has not moved for too long.")


class ProjectionView(BaseModel):
    name: str
    state: Literal["running", "halted"]
    halted_reason: str | None = None
    lag: int | None = Field(description="Messages not yet applied, over all partitions.")
    failures: int = Field(description="Open failures (poison events).")
    stalled: bool = Field(default=False, description="Some partition is stalled (see its `stalled`).")
    checkpoint_age_s: float | None = Field(
        default=None, description="The longest any lagging partition's checkpoint has not moved, in seconds."
    )
    partitions: list[PartitionProgress]
    rebuild: dict[str, Any] | None = None


class FailureView(BaseModel):
    failure_id: int
    projection: str
    topic: str
    partition: int
    offset: int
    event_id: str | None
    event_type: str | None
    error: str
    attempts: int
    created_at: datetime


# ---------------------------------------------------------------- messaging


class StartConversationRequest(Body):
    participants: Participants = Field(description="2 to 50 distinct account ids.")
    title: Title | None = None


class ConversationStartedResponse(BaseModel):
    conversation_id: str
    command_id: str
    version: int
    position: str


class SubmitMessageRequest(Body):
    sender: AccountId = Field(description="The paying participant's account id.")
    body: MessageBody = Field(examples=["Hello!"])


class MessageAcceptedResponse(BaseModel):
    """The message is stored and priced; it is delivered once its sender has been charged."""

    message_id: str
    command_id: str
    status: Literal["pending_payment"] = "pending_payment"
    price: int
    currency: str
    position: str


class MarkReadRequest(Body):
    reader: AccountId


class MessageView(BaseModel):
    message_id: str
    conversation_id: str
    sender: str
    recipients: list[str]
    body: str
    price: int
    currency: str
    status: Literal["pending_payment", "delivered", "rejected"]
    reason: str | None = None
    submitted_at: datetime
    delivered_at: datetime | None = None


class MessagePage(BaseModel):
    items: list[MessageView]
    next_cursor: str | None


class InboxItem(BaseModel):
    message_id: str
    conversation_id: str
    sender: str
    body: str
    price: int
    currency: str
    delivered_at: datetime
    read: bool
    read_at: datetime | None = None


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None


class Pricing(BaseModel):
    """What a message costs: base_fee + fee_per_recipient × recipients, in the sender's currency."""

    base_fee: int
    fee_per_recipient: int
    currency: Literal["sender's account currency"] = "sender's account currency"
    unit: Literal["minor units"] = "minor units"
