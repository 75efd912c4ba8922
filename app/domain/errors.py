"""Domain errors: one class per broken business rule.

Each error carries a stable ``code`` slug (the API turns it into a problem+json
type URI), a short ``title`` and a per-instance ``detail``. ``extras`` exposes the
rule-specific facts a client needs to react without parsing ``detail``.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """Root of every business-rule violation; anything else is a bug."""

    code: ClassVar[str] = "domain-error"
    title: ClassVar[str] = "Domain rule violated"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extras(self) -> dict[str, object]:
        return {}


class AggregateNotFound(DomainError):
    """The API maps this family (and only this one) to 404."""

    code: ClassVar[str] = "not-found"
    title: ClassVar[str] = "Not found"

    def __init__(self, *, aggregate_type: str, aggregate_id: str | None = None) -> None:
        # The pure domain does not know stream ids; the application layer may pass one.
        suffix = f" {aggregate_id}" if aggregate_id is not None else ""
        super().__init__(f"{aggregate_type}{suffix} does not exist")
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id

    def extras(self) -> dict[str, object]:
        extras: dict[str, object] = {"aggregate_type": self.aggregate_type}
        if self.aggregate_id is not None:
            extras["aggregate_id"] = self.aggregate_id
        return extras


class AccountNotFound(AggregateNotFound):
    def __init__(self, *, aggregate_id: str | None = None) -> None:
        super().__init__(aggregate_type="Account", aggregate_id=aggregate_id)


class AggregateAlreadyExists(DomainError):
    code: ClassVar[str] = "already-exists"
    title: ClassVar[str] = "Already exists"

    def __init__(self, *, aggregate_type: str, aggregate_id: str | None = None) -> None:
        suffix = f" {aggregate_id}" if aggregate_id is not None else ""
        super().__init__(f"{aggregate_type}{suffix} already exists")
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id

    def extras(self) -> dict[str, object]:
        extras: dict[str, object] = {"aggregate_type": self.aggregate_type}
        if self.aggregate_id is not None:
            extras["aggregate_id"] = self.aggregate_id
        return extras


class InsufficientFunds(DomainError):
    code: ClassVar[str] = "insufficient-funds"
    title: ClassVar[str] = "Insufficient funds"

    def __init__(self, *, balance: int, requested: int) -> None:
        super().__init__(f"balance {balance} is less than requested {requested}")
        self.balance = balance
        self.requested = requested

    def extras(self) -> dict[str, object]:
        return {"balance": self.balance, "requested": self.requested}


class BalanceLimitExceeded(DomainError):
    """Keeps balances bounded so an int never grows without limit."""

    code: ClassVar[str] = "balance-limit-exceeded"
    title: ClassVar[str] = "Balance limit exceeded"

    def __init__(self, *, balance: int, requested: int, limit: int) -> None:
        super().__init__(f"balance {balance} plus {requested} would exceed the limit {limit}")
        self.balance = balance
        self.requested = requested
        self.limit = limit

    def extras(self) -> dict[str, object]:
        return {"balance": self.balance, "requested": self.requested, "limit": self.limit}


class DuplicateCharge(DomainError):
    code: ClassVar[str] = "duplicate-charge"
    title: ClassVar[str] = "Duplicate charge"

    def __init__(self, *, reference: str) -> None:
        super().__init__(f"charge {reference!r} was already made on this account")
        self.reference = reference

    def extras(self) -> dict[str, object]:
        return {"reference": self.reference}


class ChargeNotFound(DomainError):
    # Deliberately not an AggregateNotFound: the account exists, so this is a 422.
    code: ClassVar[str] = "charge-not-found"
    title: ClassVar[str] = "Charge not found"

    def __init__(self, *, reference: str) -> None:
        super().__init__(f"no charge {reference!r} on this account")
        self.reference = reference

    def extras(self) -> dict[str, object]:
        return {"reference": self.reference}


class ChargeAlreadyRefunded(DomainError):
    code: ClassVar[str] = "charge-already-refunded"
    title: ClassVar[str] = "Charge already refunded"

    def __init__(self, *, reference: str) -> None:
        super().__init__(f"charge {reference!r} was already refunded")
        self.reference = reference

    def extras(self) -> dict[str, object]:
        return {"reference": self.reference}


class MessageNotFound(AggregateNotFound):
    def __init__(self, *, aggregate_id: str | None = None) -> None:
        super().__init__(aggregate_type="Message", aggregate_id=aggregate_id)


class MessageNotPending(DomainError):
    """Delivering or rejecting a message whose payment outcome is already settled the other way."""

    code: ClassVar[str] = "message-not-pending"
    title: ClassVar[str] = "Message not pending payment"

    def __init__(self, *, status: str) -> None:
        super().__init__(f"message is {status}, not pending payment")
        self.status = status

    def extras(self) -> dict[str, object]:
        return {"status": self.status}


class MessageNotDelivered(DomainError):
    code: ClassVar[str] = "message-not-delivered"
    title: ClassVar[str] = "Message not delivered"

    def __init__(self, *, status: str) -> None:
        super().__init__(f"message is {status}, not delivered")
        self.status = status

    def extras(self) -> dict[str, object]:
        return {"status": self.status}


class NotARecipient(DomainError):
    code: ClassVar[str] = "not-a-recipient"
    title: ClassVar[str] = "Not a recipient"

    def __init__(self, *, reader: str) -> None:
        super().__init__(f"{reader} is not a recipient of this message")
        self.reader = reader

    def extras(self) -> dict[str, object]:
        return {"reader": self.reader}
