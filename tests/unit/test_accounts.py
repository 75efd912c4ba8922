"""Account behaviour, written as given (past events) / when (command) / then (events or error)."""

from __future__ import annotations

import json
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from app.domain.accounts import (
    KIND,
    MAX_BALANCE,
    NAME,
    Account,
    AccountCharged,
    AccountCommand,
    AccountEvent,
    AccountOpened,
    Charge,
    ChargeDeclined,
    ChargeRefunded,
    Deposit,
    FundsDeposited,
    FundsWithdrawn,
    OpenAccount,
    Refund,
    Withdraw,
    decide,
    evolve,
    restore,
    snapshot,
)
from app.domain.errors import (
    AccountNotFound,
    AggregateAlreadyExists,
    AggregateNotFound,
    BalanceLimitExceeded,
    ChargeAlreadyRefunded,
    ChargeNotFound,
    DomainError,
    DuplicateCharge,
    InsufficientFunds,
)

OPENED = AccountOpened(owner="Ada Lovelace", currency="EUR")


def given(*events: AccountEvent) -> Account | None:
    state: Account | None = None
    for event in events:
        state = evolve(state, event)
    return state


def with_balance(balance: int) -> Account | None:
    return given(OPENED, FundsDeposited(amount=balance, balance_after=balance))


# --- Opening ------------------------------------------------------------------


def test_opening_an_account_records_owner_and_currency() -> None:
    events = decide(None, OpenAccount(owner="Ada Lovelace", currency="EUR"))

    assert events == [AccountOpened(owner="Ada Lovelace", currency="EUR")]
    assert given(*events) == Account(owner="Ada Lovelace", currency="EUR")


def test_an_account_is_opened_only_once() -> None:
    with pytest.raises(AggregateAlreadyExists) as caught:
        decide(given(OPENED), OpenAccount(owner="Ada", currency="EUR"))

    assert caught.value.code == "already-exists"
    assert caught.value.extras() == {"aggregate_type": NAME}


@pytest.mark.parametrize(
    "command",
    [
        Deposit(amount=1),
        Withdraw(amount=1),
        Charge(amount=1, reference="order-1"),
        Refund(reference="order-1"),
    ],
)
def test_commands_on_an_unopened_account_are_refused_as_not_found(command: AccountCommand) -> None:
    with pytest.raises(AccountNotFound) as caught:
        decide(None, command)

    assert isinstance(caught.value, AggregateNotFound)
    assert caught.value.code == "not-found"


# --- Deposits and withdrawals -------------------------------------------------


def test_a_deposit_increases_the_balance() -> None:
    events = decide(with_balance(10), Deposit(amount=5, reference="top-up"))

    assert events == [FundsDeposited(amount=5, reference="top-up", balance_after=15)]
    state = given(OPENED, FundsDeposited(amount=10, balance_after=10), *events)
    assert state is not None and state.balance == 15


def test_a_deposit_beyond_the_balance_ceiling_is_refused() -> None:
    with pytest.raises(BalanceLimitExceeded) as caught:
        decide(with_balance(MAX_BALANCE), Deposit(amount=1))

    assert caught.value.code == "balance-limit-exceeded"
    assert caught.value.extras() == {"balance": MAX_BALANCE, "requested": 1, "limit": MAX_BALANCE}


def test_a_deposit_up_to_the_balance_ceiling_is_accepted() -> None:
    events = decide(with_balance(MAX_BALANCE - 7), Deposit(amount=7))

    assert events == [FundsDeposited(amount=7, balance_after=MAX_BALANCE)]


def test_a_withdrawal_within_balance_decreases_it() -> None:
    events = decide(with_balance(10), Withdraw(amount=10))

    assert events == [FundsWithdrawn(amount=10, balance_after=0)]


def test_withdrawal_beyond_balance_is_refused() -> None:
    with pytest.raises(InsufficientFunds) as caught:
        decide(with_balance(5), Withdraw(amount=6))

    assert caught.value.code == "insufficient-funds"
    assert caught.value.extras() == {"balance": 5, "requested": 6}
    assert "5" in caught.value.detail and "6" in caught.value.detail


# --- Charges and refunds ------------------------------------------------------


def test_a_charge_within_balance_is_taken() -> None:
    events = decide(with_balance(10), Charge(amount=4, reference="order-1"))

    assert events == [AccountCharged(amount=4, reference="order-1", balance_after=6)]
    state = evolve(with_balance(10), events[0])
    assert state.balance == 6 and dict(state.charges) == {"order-1": 4}


def test_charge_beyond_balance_is_declined_as_an_event() -> None:
    events = decide(with_balance(5), Charge(amount=10, reference="order-1"))

    assert events == [
        ChargeDeclined(
            amount=10,
            reference="order-1",
            reason="insufficient funds: balance 5, price 10",
            balance=5,
        )
    ]
    before = with_balance(5)
    assert before is not None
    assert evolve(before, events[0]) == replace(before, declined=frozenset({"order-1"}))


def test_a_declined_reference_is_not_charged_again_even_after_a_top_up() -> None:
    state = given(
        OPENED,
        ChargeDeclined(amount=10, reference="order-1", reason="insufficient funds", balance=0),
        FundsDeposited(amount=10, balance_after=10),
    )

    with pytest.raises(DuplicateCharge):
        decide(state, Charge(amount=10, reference="order-1"))


def test_a_charge_reference_is_charged_once() -> None:
    state = given(
        OPENED,
        FundsDeposited(amount=100, balance_after=100),
        AccountCharged(amount=10, reference="order-1", balance_after=90),
    )

    with pytest.raises(DuplicateCharge) as caught:
        decide(state, Charge(amount=10, reference="order-1"))

    assert caught.value.code == "duplicate-charge"
    assert caught.value.extras() == {"reference": "order-1"}


def test_a_refunded_charge_reference_cannot_be_charged_again() -> None:
    state = given(
        OPENED,
        FundsDeposited(amount=100, balance_after=100),
        AccountCharged(amount=10, reference="order-1", balance_after=90),
        ChargeRefunded(amount=10, reference="order-1", balance_after=100),
    )

    with pytest.raises(DuplicateCharge):
        decide(state, Charge(amount=10, reference="order-1"))


def test_a_refund_returns_the_original_charged_amount() -> None:
    state = given(
        OPENED,
        FundsDeposited(amount=100, balance_after=100),
        AccountCharged(amount=30, reference="order-1", balance_after=70),
    )

    events = decide(state, Refund(reference="order-1"))

    assert events == [ChargeRefunded(amount=30, reference="order-1", balance_after=100)]
    after = evolve(state, events[0])
    assert after.balance == 100
    assert dict(after.charges) == {}
    assert after.refunded == frozenset({"order-1"})


def test_refund_of_unknown_charge_is_refused() -> None:
    with pytest.raises(ChargeNotFound) as caught:
        decide(with_balance(10), Refund(reference="order-404"))

    # The account exists, so this must not be mapped to a 404.
    assert not isinstance(caught.value, AggregateNotFound)
    assert caught.value.code == "charge-not-found"
    assert caught.value.extras() == {"reference": "order-404"}


def test_refund_of_a_declined_charge_is_refused_as_unknown() -> None:
    state = given(OPENED, ChargeDeclined(amount=10, reference="order-1", reason="insufficient funds", balance=0))

    with pytest.raises(ChargeNotFound):
        decide(state, Refund(reference="order-1"))


def test_a_charge_is_refunded_only_once() -> None:
    state = given(
        OPENED,
        FundsDeposited(amount=100, balance_after=100),
        AccountCharged(amount=10, reference="order-1", balance_after=90),
        ChargeRefunded(amount=10, reference="order-1", balance_after=100),
    )

    with pytest.raises(ChargeAlreadyRefunded) as caught:
        decide(state, Refund(reference="order-1"))

    assert caught.value.code == "charge-already-refunded"


def test_a_refund_beyond_the_balance_ceiling_is_refused() -> None:
    state = given(
        OPENED,
        FundsDeposited(amount=10, balance_after=10),
        AccountCharged(amount=10, reference="order-1", balance_after=0),
        FundsDeposited(amount=MAX_BALANCE, balance_after=MAX_BALANCE),
    )

    with pytest.raises(BalanceLimitExceeded):
        decide(state, Refund(reference="order-1"))


# --- Errors -------------------------------------------------------------------


def test_every_domain_error_has_a_code_and_title() -> None:
    errors: list[DomainError] = [
        AccountNotFound(),
        AggregateAlreadyExists(aggregate_type="Account"),
        InsufficientFunds(balance=1, requested=2),
        BalanceLimitExceeded(balance=1, requested=2, limit=3),
        DuplicateCharge(reference="r"),
        ChargeNotFound(reference="r"),
        ChargeAlreadyRefunded(reference="r"),
    ]

    codes = [error.code for error in errors]
    assert all(code and title for code, title in zip(codes, (e.title for e in errors), strict=True))
    assert len(set(codes)) == len(codes)
    assert all(error.detail == str(error) for error in errors)


def test_not_found_can_name_the_aggregate_id_supplied_by_the_application() -> None:
    error = AccountNotFound(aggregate_id="acc-1")

    assert error.extras() == {"aggregate_type": "Account", "aggregate_id": "acc-1"}
    assert "acc-1" in error.detail


# --- Command validation -------------------------------------------------------

COMMAND = TypeAdapter[Any](AccountCommand)


def parse(payload: dict[str, object]) -> object:
    return COMMAND.validate_python(payload)


def test_commands_parse_by_their_type_discriminator() -> None:
    assert parse({"type": "Deposit", "amount": 10}) == Deposit(amount=10)
    assert COMMAND.validate_json('{"type": "Charge", "amount": 3, "reference": "o-1"}') == Charge(
        amount=3, reference="o-1"
    )


@pytest.mark.parametrize(
    "amount",
    [0, -1, 10**12 + 1, 10.0, 1.5, True, False, "10", None, [10]],
    ids=["zero", "negative", "over-max", "float", "fraction", "true", "false", "string", "none", "list"],
)
def test_invalid_amounts_are_refused(amount: object) -> None:
    for command_type in ("Deposit", "Withdraw"):
        with pytest.raises(ValidationError):
            parse({"type": command_type, "amount": amount})
    with pytest.raises(ValidationError):
        parse({"type": "Charge", "amount": amount, "reference": "o-1"})


def test_amount_bounds_are_inclusive() -> None:
    assert Deposit(amount=1).amount == 1
    assert Deposit(amount=10**12).amount == 10**12


def test_string_amounts_are_refused_from_json_too() -> None:
    with pytest.raises(ValidationError):
        COMMAND.validate_json('{"type": "Deposit", "amount": "10"}')


@pytest.mark.parametrize("currency", ["usd", "Usd", "ABC", "XAU", "US", "USDD", " USD", "", 840])
def test_unknown_or_malformed_currencies_are_refused(currency: object) -> None:
    with pytest.raises(ValidationError):
        parse({"type": "OpenAccount", "owner": "Ada", "currency": currency})


def test_a_lowercase_currency_gets_a_clear_message() -> None:
    with pytest.raises(ValidationError, match="unknown ISO 4217 currency code"):
        OpenAccount(owner="Ada", currency="usd")


@pytest.mark.parametrize(
    "owner",
    ["", "   ", "a" * 201, "Ada\nLovelace", "Ada\x00", 42, None],
    ids=["empty", "blank", "too-long", "newline", "nul", "int", "none"],
)
def test_invalid_owners_are_refused(owner: object) -> None:
    with pytest.raises(ValidationError):
        parse({"type": "OpenAccount", "owner": owner, "currency": "EUR"})


def test_owner_and_reference_are_stripped() -> None:
    assert OpenAccount(owner="  Ada  ", currency="EUR").owner == "Ada"
    assert Charge(amount=1, reference=" o-1 ").reference == "o-1"
    assert OpenAccount(owner="a" * 200, currency="EUR").owner == "a" * 200


@pytest.mark.parametrize("reference", ["", "   ", "r" * 101, 7])
def test_invalid_references_are_refused(reference: object) -> None:
    with pytest.raises(ValidationError):
        parse({"type": "Charge", "amount": 1, "reference": reference})
    with pytest.raises(ValidationError):
        parse({"type": "Refund", "reference": reference})


def test_charges_and_refunds_require_a_reference() -> None:
    with pytest.raises(ValidationError):
        parse({"type": "Charge", "amount": 1})
    with pytest.raises(ValidationError):
        parse({"type": "Refund"})


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        parse({"type": "Deposit", "amount": 1, "amount_cents": 1})
    with pytest.raises(ValidationError):
        parse({"type": "Transfer", "amount": 1})


def test_commands_and_events_are_immutable() -> None:
    command = Deposit(amount=1)
    with pytest.raises(ValidationError):
        command.amount = 2  # type: ignore[misc, unused-ignore]  # only with the pydantic plugin
    with pytest.raises(ValidationError):
        OPENED.owner = "Mallory"  # type: ignore[misc, unused-ignore]


# --- Events -------------------------------------------------------------------

EVENT = TypeAdapter[Any](AccountEvent)


def test_events_round_trip_through_json_by_discriminator() -> None:
    events: list[AccountEvent] = [
        OPENED,
        FundsDeposited(amount=10, reference=None, balance_after=10),
        FundsWithdrawn(amount=3, reference="atm", balance_after=7),
        AccountCharged(amount=2, reference="o-1", balance_after=5),
        ChargeDeclined(amount=50, reference="o-2", reason="insufficient funds", balance=5),
        ChargeRefunded(amount=2, reference="o-1", balance_after=7),
    ]

    for event in events:
        assert EVENT.validate_json(event.model_dump_json()) == event


def test_stored_events_load_without_command_constraints() -> None:
    # Facts recorded under older, looser rules must still load.
    event = EVENT.validate_python(
        {"type": "FundsDeposited", "amount": 10**13, "reference": "", "balance_after": 10**13}
    )

    assert event == FundsDeposited(amount=10**13, reference="", balance_after=10**13)


def test_type_registries_map_each_discriminator_to_its_class() -> None:
    for registry in (KIND.events, KIND.commands):
        for name, cls in registry.items():
            assert cls.model_fields["type"].default == name
    assert set(KIND.events) == {
        "AccountOpened",
        "FundsDeposited",
        "FundsWithdrawn",
        "AccountCharged",
        "ChargeDeclined",
        "ChargeRefunded",
        "SubjectForgotten",
    }
    assert set(KIND.commands) == {"OpenAccount", "Deposit", "Withdraw", "Charge", "Refund", "ForgetSubject"}
    assert all(cls.schema_version == 1 for cls in KIND.events.values())


def test_evolve_refuses_events_before_the_account_is_opened() -> None:
    with pytest.raises(ValueError):
        evolve(None, FundsDeposited(amount=1, balance_after=1))


# --- State and snapshots ------------------------------------------------------


def test_state_cannot_be_mutated() -> None:
    state = given(OPENED, FundsDeposited(amount=10, balance_after=10))
    assert state is not None

    with pytest.raises(AttributeError):
        state.balance = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        state.charges["x"] = 1  # type: ignore[index]


def test_evolve_does_not_touch_the_previous_state() -> None:
    before = given(OPENED, FundsDeposited(amount=10, balance_after=10))
    assert before is not None

    after = evolve(before, AccountCharged(amount=4, reference="o-1", balance_after=6))

    assert before.balance == 10 and dict(before.charges) == {}
    assert after.balance == 6


def test_snapshot_round_trip_is_exact() -> None:
    state = given(
        OPENED,
        FundsDeposited(amount=100, balance_after=100),
        AccountCharged(amount=10, reference="o-1", balance_after=90),
        AccountCharged(amount=20, reference="o-2", balance_after=70),
        ChargeRefunded(amount=10, reference="o-1", balance_after=80),
    )
    assert state is not None

    data = snapshot(state)

    assert data == {
        "snapshot_version": 1,
        "owner": "Ada Lovelace",
        "currency": "EUR",
        "balance": 80,
        "charges": {"o-2": 20},
        "refunded": ["o-1"],
        "declined": [],
    }
    assert restore(data) == state
    assert isinstance(restore(data).charges, MappingProxyType)


def test_snapshot_survives_json() -> None:
    state = Account(
        owner="Ada",
        currency="JPY",
        balance=5,
        charges=MappingProxyType({"b": 1, "a": 2}),
        refunded=frozenset({"z", "y"}),
    )

    assert restore(json.loads(json.dumps(snapshot(state)))) == state


def test_a_corrupt_snapshot_is_refused() -> None:
    data = snapshot(Account(owner="Ada", currency="EUR"))

    with pytest.raises(ValidationError):
        restore({**data, "balance": "10"})
    with pytest.raises(ValidationError):
        restore({**data, "snapshot_version": 2})
