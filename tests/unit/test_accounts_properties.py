"""Properties of the Account aggregate over arbitrary command sequences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.accounts import (
    MAX_BALANCE,
    Account,
    AccountCharged,
    AccountCommand,
    AccountEvent,
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
from app.domain.errors import DomainError

# A small pool so duplicate charges, refunds and double refunds actually happen.
references = st.sampled_from(["r1", "r2", "r3"])
# Mostly small amounts so balances hover near zero and both outcomes are common;
# now and then a huge one to hit the upper bounds.
amounts = st.one_of(
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=1, max_value=10**12),
)
deposits = st.builds(Deposit, amount=amounts, reference=st.none() | references)
withdrawals = st.builds(Withdraw, amount=amounts, reference=st.none() | references)
charges = st.builds(Charge, amount=amounts, reference=references)
refunds = st.builds(Refund, reference=references)

# Repeated branches weight the mix towards the charge/refund rules under test.
commands: st.SearchStrategy[AccountCommand] = st.one_of(
    deposits,
    deposits,
    withdrawals,
    charges,
    charges,
    refunds,
    refunds,
    st.just(OpenAccount(owner="Ada", currency="EUR")),
)


def net_effect(event: AccountEvent) -> int:
    match event:
        case FundsDeposited() | ChargeRefunded():
            return event.amount
        case FundsWithdrawn() | AccountCharged():
            return -event.amount
        case _:
            return 0


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=60))
def test_balance_is_the_sum_of_money_movements_and_never_negative(
    script: list[AccountCommand],
) -> None:
    state: Account | None = evolve(None, decide(None, OpenAccount(owner="Ada", currency="EUR"))[0])
    expected = 0

    for command in script:
        try:
            events = decide(state, command)
        except DomainError:
            continue  # a refused command changes nothing; any other exception fails the test
        for event in events:
            state = evolve(state, event)
            expected += net_effect(event)
        assert state is not None
        assert state.balance == expected
        assert 0 <= state.balance <= MAX_BALANCE


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=60))
def test_charge_bookkeeping_stays_consistent_and_snapshots_round_trip(
    script: list[AccountCommand],
) -> None:
    state = evolve(None, decide(None, OpenAccount(owner="Ada", currency="EUR"))[0])

    for command in script:
        try:
            events = decide(state, command)
        except DomainError:
            continue
        for event in events:
            if isinstance(event, ChargeDeclined):
                # Declined means the account could not pay.
                assert event.amount > state.balance
            state = evolve(state, event)
        # A reference is either outstanding or refunded, never both.
        assert not set(state.charges) & state.refunded
        assert restore(snapshot(state)) == state


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=30), st.sampled_from([None, "open"]))
def test_every_refusal_is_a_domain_error(script: list[AccountCommand], start: str | None) -> None:
    state: Account | None = None
    if start == "open":
        state = evolve(None, decide(None, OpenAccount(owner="Ada", currency="EUR"))[0])

    for command in script:
        try:
            events = decide(state, command)
        except DomainError as error:
            assert error.code and error.title and error.detail
            assert isinstance(error.extras(), dict)
            continue
        for event in events:
            state = evolve(state, event)
