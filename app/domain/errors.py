"""Domain errors: one class per broken business rule, declared rather than written.

An error declares a stable ``code`` slug (the API turns it into a problem+json
type URI), a short ``title``, a ``template`` for its ``detail``, and the facts a
client needs to react without parsing the detail, as fields. ``extras`` is those
facts; the constructor, the detail and ``str()`` follow from the declaration:

    class InsufficientFunds(DomainError):
        code = "insufficient-funds"
        title = "Insufficient funds"
        template = "balance {balance} is less than requested {requested}"
        balance: int
        requested: int
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, dataclass_transform


@dataclass_transform(kw_only_default=True, eq_default=False, field_specifiers=(dataclasses.field,))
class DomainError(Exception):
    """Root of every business-rule violation; anything else is a bug.

    Each subclass becomes a keyword-only dataclass of its facts. Not compared by
    value (an exception is an event, not a value), and never raised bare.
    """

    code: ClassVar[str] = "domain-error"
    title: ClassVar[str] = "Domain rule violated"
    template: ClassVar[str] = "a domain rule was violated"

    def __init_subclass__(cls, **options: object) -> None:
        super().__init_subclass__(**options)
        dataclasses.dataclass(kw_only=True, eq=False, repr=True)(cls)

    @property
    def detail(self) -> str:
        return self.template.format(**self.extras())

    def extras(self) -> dict[str, object]:
        """The rule's facts; one left unknown (None) is left out."""
        facts = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {name: value for name, value in facts.items() if value is not None}

    def __str__(self) -> str:
        return self.detail


class AggregateError(DomainError):
    """A rule about whether an aggregate exists. The pure domain does not know stream
    ids; the application layer may name one."""

    aggregate_type: str
    aggregate_id: str | None = None

    @property
    def detail(self) -> str:
        named = self.aggregate_type if self.aggregate_id is None else f"{self.aggregate_type} {self.aggregate_id}"
        return self.template.format(aggregate=named)


class AggregateNotFound(AggregateError):
    """The API maps this family (and only this one) to 404."""

    code = "not-found"
    title = "Not found"
    template = "{aggregate} does not exist"


class AggregateAlreadyExists(AggregateError):
    code = "already-exists"
    title = "Already exists"
    template = "{aggregate} already exists"


class AccountNotFound(AggregateNotFound):
    aggregate_type: str = dataclasses.field(default="Account", init=False)


class MessageNotFound(AggregateNotFound):
    aggregate_type: str = dataclasses.field(default="Message", init=False)


class ConversationNotFound(AggregateNotFound):
    aggregate_type: str = dataclasses.field(default="Conversation", init=False)


class InsufficientFunds(DomainError):
    code = "insufficient-funds"
    title = "Insufficient funds"
    template = "balance {balance} is less than requested {requested}"
    balance: int
    requested: int


class BalanceLimitExceeded(DomainError):
    """Keeps balances bounded so an int never grows without limit."""

    code = "balance-limit-exceeded"
    title = "Balance limit exceeded"
    template = "balance {balance} plus {requested} would exceed the limit {limit}"
    balance: int
    requested: int
    limit: int


class DuplicateCharge(DomainError):
    code = "duplicate-charge"
    title = "Duplicate charge"
    template = "charge {reference!r} was already made on this account"
    reference: str


class ChargeNotFound(DomainError):
    # Deliberately not an AggregateNotFound: the account exists, so this is a 422.
    code = "charge-not-found"
    title = "Charge not found"
    template = "no charge {reference!r} on this account"
    reference: str


class ChargeAlreadyRefunded(DomainError):
    code = "charge-already-refunded"
    title = "Charge already refunded"
    template = "charge {reference!r} was already refunded"
    reference: str


class MessageNotPending(DomainError):
    """Delivering or rejecting a message whose payment outcome is already settled the other way."""

    code = "message-not-pending"
    title = "Message not pending payment"
    template = "message is {message_status}, not pending payment"
    message_status: str  # not `status`: a problem's `status` is the HTTP status (RFC 9457)


class MessageNotDelivered(DomainError):
    code = "message-not-delivered"
    title = "Message not delivered"
    template = "message is {message_status}, not delivered"
    message_status: str


class NotARecipient(DomainError):
    code = "not-a-recipient"
    title = "Not a recipient"
    template = "{reader} is not a recipient of this message"
    reader: str


class SubjectIsForgotten(DomainError):
    """The aggregate is a data subject who asked to be forgotten: it takes no more commands (410)."""

    code = "subject-forgotten"
    title = "Subject forgotten"
    template = "this {aggregate_type} asked to be forgotten; it takes no more commands"
    aggregate_type: str
