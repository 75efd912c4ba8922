"""Account aggregate: commands, events, state, and the pure decide/evolve pair.

``decide`` checks business rules against current state and returns new events
(or raises a DomainError); ``evolve`` folds one event into state and never
validates, because events are facts that already happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Annotated, Final, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field

from .base import Command, Event
from .errors import (
    AccountNotFound,
    AggregateAlreadyExists,
    BalanceLimitExceeded,
    ChargeAlreadyRefunded,
    ChargeNotFound,
    DuplicateCharge,
    InsufficientFunds,
    SubjectIsForgotten,
)
from .forgetting import ForgetSubject, SubjectForgotten
from .kind import AggregateKind
from .money import Amount, Currency, Holder, Owner, Reference
from .personal import Personal

NAME: Final = "Account"

# Far above any real account, low enough that balances stay bounded ints.
MAX_BALANCE: Final = 10**15


# --- Commands -----------------------------------------------------------------


class OpenAccount(Command):
    type: Literal["OpenAccount"] = "OpenAccount"
    owner: Annotated[Owner, Personal("account")]
    currency: Currency
    # The end user (a token's subject) who holds the account; none when a service opens it.
    holder: Annotated[Holder | None, Personal("account")] = None


class Deposit(Command):
    type: Literal["Deposit"] = "Deposit"
    amount: Amount
    reference: Annotated[Reference | None, Personal("account")] = None


class Withdraw(Command):
    type: Literal["Withdraw"] = "Withdraw"
    amount: Amount
    reference: Annotated[Reference | None, Personal("account")] = None


class Charge(Command):
    type: Literal["Charge"] = "Charge"
    amount: Amount
    reference: Reference


class Refund(Command):
    type: Literal["Refund"] = "Refund"
    reference: Reference


AccountCommand = Annotated[
    OpenAccount | Deposit | Withdraw | Charge | Refund | ForgetSubject,
    Field(discriminator="type"),
]


# --- Events -------------------------------------------------------------------
# Plain str/int fields: stored facts must load even if command rules tighten later.
# Each event carries the resulting balance so consumers need not replay history.


class AccountOpened(Event):
    type: Literal["AccountOpened"] = "AccountOpened"
    owner: Annotated[str, Personal("account")]
    currency: str
    holder: Annotated[str | None, Personal("account")] = None  # older events have none


class FundsDeposited(Event):
    type: Literal["FundsDeposited"] = "FundsDeposited"
    amount: int
    reference: Annotated[str | None, Personal("account")] = None
    balance_after: int


class FundsWithdrawn(Event):
    type: Literal["FundsWithdrawn"] = "FundsWithdrawn"
    amount: int
    reference: Annotated[str | None, Personal("account")] = None
    balance_after: int


class AccountCharged(Event):
    type: Literal["AccountCharged"] = "AccountCharged"
    amount: int
    reference: str
    balance_after: int


class ChargeDeclined(Event):
    """An event, not an error: the saga that asked for the charge must learn of it."""

    type: Literal["ChargeDeclined"] = "ChargeDeclined"
    amount: int
    reference: str
    reason: str
    balance: int


class ChargeRefunded(Event):
    type: Literal["ChargeRefunded"] = "ChargeRefunded"
    amount: int
    reference: str
    balance_after: int


AccountEvent = Annotated[
    AccountOpened
    | FundsDeposited
    | FundsWithdrawn
    | AccountCharged
    | ChargeDeclined
    | ChargeRefunded
    | SubjectForgotten,
    Field(discriminator="type"),
]


# --- State --------------------------------------------------------------------


def _no_charges() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Account:
    owner: str
    currency: str
    balance: int = 0
    # reference -> amount charged and not yet refunded. A read-only proxy over a
    # dict nobody else holds, so the frozen state cannot be mutated through it.
    charges: Mapping[str, int] = field(default_factory=_no_charges)
    # References are remembered after a refund so they can never be reused.
    refunded: frozenset[str] = frozenset()
    # A declined reference is decided too: charging it again is a replay, not a new charge.
    declined: frozenset[str] = frozenset()
    # Its holder asked to be forgotten (app.domain.forgetting): the history stays, nothing new is taken.
    forgotten: bool = False


# --- decide -------------------------------------------------------------------


def decide(state: Account | None, command: AccountCommand) -> list[AccountEvent]:
    if state is not None and state.forgotten:
        return _decide_forgotten(state, command)
    match command:
        case OpenAccount():
            return _open(state, command)
        case Deposit():
            return _deposit(_existing(state), command)
        case Withdraw():
            return _withdraw(_existing(state), command)
        case Charge():
            return _charge(_existing(state), command)
        case Refund():
            return _refund(_existing(state), command)
        case ForgetSubject():
            return _forget(_existing(state), command)
        case _:
            assert_never(command)


def _decide_forgotten(state: Account, command: AccountCommand) -> list[AccountEvent]:
    """A forgotten account takes nothing new from anyone, but what the system owes it still settles:
    a charge the saga asks for is declined (an event, so the message is rejected rather than left
    pending), and a refund of an earlier charge still goes back to the balance."""
    match command:
        case ForgetSubject():
            return []  # forgetting again changes nothing
        case Charge():
            if command.reference in state.charges or command.reference in state.refunded | state.declined:
                raise DuplicateCharge(reference=command.reference)
            return [
                ChargeDeclined(
                    amount=command.amount,
                    reference=command.reference,
                    reason="the account's holder asked to be forgotten",
                    balance=state.balance,
                )
            ]
        case Refund():
            return _refund(state, command)
        case _:
            raise SubjectIsForgotten(aggregate_type=NAME)


def _existing(state: Account | None) -> Account:
    if state is None:
        raise AccountNotFound()
    return state


def _forget(state: Account, command: ForgetSubject) -> list[AccountEvent]:
    return [SubjectForgotten(requested_by=command.requested_by)]


def _open(state: Account | None, command: OpenAccount) -> list[AccountEvent]:
    if state is not None:
        raise AggregateAlreadyExists(aggregate_type=NAME)
    return [AccountOpened(owner=command.owner, currency=command.currency, holder=command.holder)]


def _credited(state: Account, amount: int) -> int:
    balance_after = state.balance + amount
    if balance_after > MAX_BALANCE:
        raise BalanceLimitExceeded(balance=state.balance, requested=amount, limit=MAX_BALANCE)
    return balance_after


def _deposit(state: Account, command: Deposit) -> list[AccountEvent]:
    balance_after = _credited(state, command.amount)
    return [FundsDeposited(amount=command.amount, reference=command.reference, balance_after=balance_after)]


def _withdraw(state: Account, command: Withdraw) -> list[AccountEvent]:
    if command.amount > state.balance:
        raise InsufficientFunds(balance=state.balance, requested=command.amount)
    return [
        FundsWithdrawn(
            amount=command.amount,
            reference=command.reference,
            balance_after=state.balance - command.amount,
        )
    ]


def _charge(state: Account, command: Charge) -> list[AccountEvent]:
    # A reference is decided once, charged or declined: a replayed charge (a saga
    # reading its events again) must neither take the money twice nor decline twice.
    if command.reference in state.charges or command.reference in state.refunded or command.reference in state.declined:
        raise DuplicateCharge(reference=command.reference)
    if command.amount > state.balance:
        return [_declined(state, command)]
    return [
        AccountCharged(
            amount=command.amount,
            reference=command.reference,
            balance_after=state.balance - command.amount,
        )
    ]


def _declined(state: Account, command: Charge) -> ChargeDeclined:
    return ChargeDeclined(
        amount=command.amount,
        reference=command.reference,
        reason=f"insufficient funds: balance {state.balance}, price {command.amount}",
        balance=state.balance,
    )


def _refund(state: Account, command: Refund) -> list[AccountEvent]:
    if command.reference in state.refunded:
        raise ChargeAlreadyRefunded(reference=command.reference)
    amount = state.charges.get(command.reference)
    if amount is None:
        raise ChargeNotFound(reference=command.reference)
    # The ceiling applies to refunds too, so 0 <= balance <= MAX_BALANCE always holds.
    balance_after = _credited(state, amount)
    return [ChargeRefunded(amount=amount, reference=command.reference, balance_after=balance_after)]


# --- evolve -------------------------------------------------------------------


def evolve(state: Account | None, event: AccountEvent) -> Account:
    match event:
        case AccountOpened():
            return Account(owner=event.owner, currency=event.currency)
        case FundsDeposited():
            return replace(_opened(state, event), balance=event.balance_after)
        case FundsWithdrawn():
            return replace(_opened(state, event), balance=event.balance_after)
        case AccountCharged():
            return _with_charge(_opened(state, event), event)
        case ChargeDeclined():
            account = _opened(state, event)
            return replace(account, declined=account.declined | {event.reference})
        case ChargeRefunded():
            return _with_refund(_opened(state, event), event)
        case SubjectForgotten():
            return replace(_opened(state, event), forgotten=True)
        case _:
            assert_never(event)


def _opened(state: Account | None, event: Event) -> Account:
    # Not a business rule: a stream whose first event is not AccountOpened is corrupt.
    if state is None:
        raise ValueError(f"{type(event).__name__} cannot apply before AccountOpened")
    return state


def _with_charge(state: Account, event: AccountCharged) -> Account:
    charges = MappingProxyType({**state.charges, event.reference: event.amount})
    return replace(state, balance=event.balance_after, charges=charges)


def _with_refund(state: Account, event: ChargeRefunded) -> Account:
    charges = {ref: amount for ref, amount in state.charges.items() if ref != event.reference}
    return replace(
        state,
        balance=event.balance_after,
        charges=MappingProxyType(charges),
        refunded=state.refunded | {event.reference},
    )


# --- Snapshot serde -----------------------------------------------------------

SNAPSHOT_VERSION: Final = 1


class _AccountSnapshot(BaseModel):
    # Strict: a snapshot is our own output, so any coercion would hide corruption.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    snapshot_version: Literal[1]
    owner: str
    currency: str
    balance: int
    charges: dict[str, int]
    refunded: list[str]
    declined: list[str] = []
    forgotten: bool = False


def snapshot(state: Account) -> dict[str, object]:
    """JSON-safe dict; refunded is sorted so equal states give equal snapshots."""
    return {
        "snapshot_version": SNAPSHOT_VERSION,
        "owner": state.owner,
        "currency": state.currency,
        "balance": state.balance,
        "charges": dict(state.charges),
        "refunded": sorted(state.refunded),
        "declined": sorted(state.declined),
        # Only when set: every other account's snapshot stays as it was before forgetting existed.
        **({"forgotten": True} if state.forgotten else {}),
    }


def restore(data: Mapping[str, object]) -> Account:
    parsed = _AccountSnapshot.model_validate(dict(data))
    return Account(
        owner=parsed.owner,
        currency=parsed.currency,
        balance=parsed.balance,
        charges=MappingProxyType(dict(parsed.charges)),
        refunded=frozenset(parsed.refunded),
        declined=frozenset(parsed.declined),
        forgotten=parsed.forgotten,
    )


KIND: Final[AggregateKind[Account, AccountCommand, AccountEvent]] = AggregateKind(
    name=NAME,
    command_union=AccountCommand,
    event_union=AccountEvent,
    decide=decide,
    evolve=evolve,
    snapshot=snapshot,
    restore=restore,
)
