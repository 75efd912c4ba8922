"""The payment saga's decision, pure: which command each event causes, with ids derived from the event."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.eventstore.envelope import EventEnvelope
from app.sagas.payment import react, reference_for

MESSAGE, SENDER = "msg-1", "acc-ada"


def event(
    type_: str, aggregate_type: str, aggregate_id: str, data: dict[str, Any], event_id: str = "e-1"
) -> EventEnvelope:
    return EventEnvelope(event_id, type_, 1, aggregate_type, aggregate_id, 1, "2026-12-01T12:00:00Z", "c-1", "corr-1",
                         "c-1", data)  # fmt: skip


def submitted(price: int) -> EventEnvelope:
    data = {"conversation_id": "conv-1", "sender": SENDER, "recipients": ["acc-bob"], "body": "hi", "price": price,
            "currency": "EUR"}  # fmt: skip
    return event("MessageSubmitted", "Message", MESSAGE, data)


def test_a_paid_message_asks_for_a_charge_of_its_price_on_the_sender() -> None:
    [charge] = react(submitted(price=7))

    assert (charge.type, charge.aggregate_type, charge.aggregate_id) == ("Charge", "Account", SENDER)
    assert charge.data == {"amount": 7, "reference": reference_for(MESSAGE)}
    assert (charge.correlation_id, charge.causation_id) == ("corr-1", "e-1")


def test_a_free_message_is_delivered_at_once() -> None:
    [deliver] = react(submitted(price=0))

    assert (deliver.type, deliver.aggregate_id, deliver.data) == ("DeliverMessage", MESSAGE, {})


def test_a_charge_for_a_message_delivers_it_and_a_declined_one_rejects_it_with_the_reason() -> None:
    charged = event("AccountCharged", "Account", SENDER,
                    {"amount": 7, "reference": reference_for(MESSAGE), "balance_after": 3}, "e-2")  # fmt: skip
    declined = event("ChargeDeclined", "Account", SENDER,
                     {"amount": 7, "reference": reference_for(MESSAGE), "reason": "insufficient funds", "balance": 1},
                     "e-3")  # fmt: skip

    [deliver], [reject] = react(charged), react(declined)

    assert (deliver.type, deliver.aggregate_id) == ("DeliverMessage", MESSAGE)
    assert (reject.type, reject.aggregate_id, reject.data) == (
        "RejectMessage",
        MESSAGE,
        {"reason": "insufficient funds"},
    )


def test_charges_that_are_not_the_sagas_and_other_events_cause_nothing() -> None:
    foreign = event("AccountCharged", "Account", SENDER, {"amount": 7, "reference": "order-1", "balance_after": 3})
    opened = event("AccountOpened", "Account", SENDER, {"owner": "Ada", "currency": "EUR"})

    assert react(foreign) == [] and react(opened) == []


def test_a_replayed_event_repeats_the_same_command_ids() -> None:
    assert [c.command_id for c in react(submitted(7))] == [c.command_id for c in react(submitted(7))]
    assert react(submitted(7))[0].command_id != react(submitted(0))[0].command_id


def test_an_event_whose_data_is_not_its_type_is_unreadable() -> None:
    with pytest.raises(ValidationError):
        react(event("MessageSubmitted", "Message", MESSAGE, {"price": "lots"}))
