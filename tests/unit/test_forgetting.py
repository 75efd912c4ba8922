"""Forgetting a data subject, in the domain: given (past events) / when (command) / then (events or error)."""

from __future__ import annotations

import uuid
from functools import reduce
from typing import Any

import pytest

from app.domain import accounts, conversations
from app.domain.accounts import (
    AccountCharged,
    AccountOpened,
    Charge,
    ChargeDeclined,
    ChargeRefunded,
    Deposit,
    FundsDeposited,
    OpenAccount,
    Refund,
    Withdraw,
)
from app.domain.conversations import ConversationStarted, StartConversation
from app.domain.errors import AccountNotFound, ConversationNotFound, DuplicateCharge, SubjectIsForgotten
from app.domain.forgetting import ForgetSubject, SubjectForgotten

OPENED = AccountOpened(owner="Ada", currency="EUR")
FORGOTTEN = SubjectForgotten(requested_by="operator")


def account(*events: Any) -> accounts.Account | None:
    return reduce(accounts.evolve, events, None)


def test_forgetting_an_account_records_who_asked_and_nothing_personal() -> None:
    state = account(OPENED, FundsDeposited(amount=5, reference="rent", balance_after=5))

    events = accounts.decide(state, ForgetSubject(requested_by="subject"))

    assert events == [SubjectForgotten(requested_by="subject")]
    assert set(events[0].model_dump()) == {"type", "requested_by"}


def test_forgetting_again_decides_nothing() -> None:
    assert accounts.decide(account(OPENED, FORGOTTEN), ForgetSubject(requested_by="operator")) == []


def test_an_account_that_does_not_exist_cannot_be_forgotten() -> None:
    with pytest.raises(AccountNotFound):
        accounts.decide(None, ForgetSubject(requested_by="operator"))


@pytest.mark.parametrize(
    "command",
    [
        Deposit(amount=1),
        Deposit(amount=1, reference="gift"),
        Withdraw(amount=1),
        OpenAccount(owner="Ada again", currency="EUR"),
    ],
    ids=["deposit", "deposit with a reference", "withdraw", "open again"],
)
def test_a_forgotten_account_takes_no_more_commands(command: Any) -> None:
    state = account(OPENED, FundsDeposited(amount=5, balance_after=5), FORGOTTEN)

    with pytest.raises(SubjectIsForgotten) as refused:
        accounts.decide(state, command)

    assert refused.value.code == "subject-forgotten"


def test_a_charge_on_a_forgotten_account_is_declined_so_the_saga_learns_of_it() -> None:
    state = account(OPENED, FundsDeposited(amount=50, balance_after=50), FORGOTTEN)

    events = accounts.decide(state, Charge(amount=10, reference="message:1"))

    assert len(events) == 1 and isinstance(events[0], ChargeDeclined)
    assert events[0].balance == 50 and "forgotten" in events[0].reason
    declined = accounts.evolve(state, events[0])
    with pytest.raises(DuplicateCharge):
        accounts.decide(declined, Charge(amount=10, reference="message:1"))


def test_a_refund_still_reaches_a_forgotten_account_and_the_balance_adds_up() -> None:
    state = account(
        OPENED,
        FundsDeposited(amount=50, balance_after=50),
        AccountCharged(amount=10, reference="message:1", balance_after=40),
        FORGOTTEN,
    )

    events = accounts.decide(state, Refund(reference="message:1"))

    assert events == [ChargeRefunded(amount=10, reference="message:1", balance_after=50)]


def test_a_forgotten_account_survives_its_snapshot_and_others_snapshot_as_before() -> None:
    forgotten = account(OPENED, FORGOTTEN)
    assert forgotten is not None and forgotten.forgotten

    assert accounts.restore(accounts.snapshot(forgotten)) == forgotten
    kept = account(OPENED)
    assert kept is not None and "forgotten" not in accounts.snapshot(kept)


PARTICIPANTS = [str(uuid.uuid4()), str(uuid.uuid4())]
STARTED = ConversationStarted(participants=PARTICIPANTS, title="Plans")


def test_forgetting_a_conversation_then_it_takes_no_more_commands() -> None:
    state = conversations.evolve(None, STARTED)

    events = conversations.decide(state, ForgetSubject(requested_by="operator"))
    assert events == [SubjectForgotten(requested_by="operator")]
    forgotten = conversations.evolve(state, events[0])

    assert conversations.decide(forgotten, ForgetSubject(requested_by="operator")) == []
    with pytest.raises(SubjectIsForgotten):
        conversations.decide(forgotten, StartConversation(participants=PARTICIPANTS))
    assert conversations.restore(conversations.snapshot(forgotten)) == forgotten


def test_a_conversation_that_does_not_exist_cannot_be_forgotten() -> None:
    with pytest.raises(ConversationNotFound):
        conversations.decide(None, ForgetSubject(requested_by="operator"))
