"""Conversation and Message behaviour, written as given (past events) / when (command) / then (events or error)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from app.domain import conversations, messages
from app.domain.conversations import (
    Conversation,
    ConversationStarted,
    StartConversation,
)
from app.domain.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    DomainError,
    MessageNotDelivered,
    MessageNotFound,
    MessageNotPending,
    NotARecipient,
)
from app.domain.messages import (
    DEFAULT_TARIFF,
    DeliverMessage,
    MarkRead,
    Message,
    MessageCommand,
    MessageDelivered,
    MessageEvent,
    MessageRead,
    MessageRejected,
    MessageSubmitted,
    RejectMessage,
    SubmitMessage,
    Tariff,
)
from app.domain.registry import AGGREGATES

ADA = "0a0a0a0a-0000-4000-8000-000000000001"
BOB = "0b0b0b0b-0000-4000-8000-000000000002"
CY = "0c0c0c0c-0000-4000-8000-000000000003"
EVE = "0e0e0e0e-0000-4000-8000-000000000004"
CHAT = "c0c0c0c0-0000-4000-8000-0000000000c0"

SUBMITTED = MessageSubmitted(
    conversation_id=CHAT, sender=ADA, recipients=[BOB, CY], body="hello", price=9, currency="EUR"
)
DELIVERED_EVENT = MessageDelivered(conversation_id=CHAT, sender=ADA, recipients=[BOB, CY])


def given(*events: MessageEvent) -> Message | None:
    state: Message | None = None
    for event in events:
        state = messages.evolve(state, event)
    return state


def submit(**overrides: object) -> SubmitMessage:
    fields: dict[str, object] = {
        "conversation_id": CHAT,
        "sender": ADA,
        "recipients": [BOB, CY],
        "body": "hello",
        "currency": "EUR",
        "tariff": DEFAULT_TARIFF,
    }
    return SubmitMessage.model_validate({**fields, **overrides})


def ids(count: int) -> list[str]:
    return [f"00000000-0000-4000-8000-{n:012x}" for n in range(1, count + 1)]


# --- Conversations ---------------------------------------------------------------


def test_starting_a_conversation_records_its_participants_and_title() -> None:
    events = conversations.decide(None, StartConversation(participants=[ADA, BOB], title="  Lunch  "))

    assert events == [ConversationStarted(participants=[ADA, BOB], title="Lunch")]
    assert conversations.evolve(None, events[0]) == Conversation(participants=(ADA, BOB), title="Lunch")


def test_a_conversation_needs_no_title() -> None:
    assert conversations.decide(None, StartConversation(participants=[ADA, BOB])) == [
        ConversationStarted(participants=[ADA, BOB], title=None)
    ]


def test_a_conversation_is_started_only_once() -> None:
    state = Conversation(participants=(ADA, BOB))

    with pytest.raises(AggregateAlreadyExists) as caught:
        conversations.decide(state, StartConversation(participants=[ADA, CY]))

    assert caught.value.extras() == {"aggregate_type": conversations.NAME}


@pytest.mark.parametrize("count", [0, 1, 51], ids=["none", "one", "fifty-one"])
def test_too_few_or_too_many_participants_are_refused(count: int) -> None:
    with pytest.raises(ValidationError):
        StartConversation(participants=ids(count))


def test_participant_bounds_are_inclusive() -> None:
    assert len(StartConversation(participants=ids(2)).participants) == 2
    assert len(StartConversation(participants=ids(50)).participants) == 50


def test_duplicate_participants_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match=f"must be distinct; repeated: {ADA}"):
        StartConversation(participants=[ADA, BOB, ADA.upper()])


def test_participant_ids_are_normalised_to_canonical_lowercase_uuids() -> None:
    command = StartConversation(participants=[ADA.upper(), BOB.replace("-", "")])

    assert command.participants == [ADA, BOB]


@pytest.mark.parametrize(
    "participant",
    ["not-a-uuid", "", ADA[:-1], ADA + "0", "0a0a0a0a00004000-8000-000000000001", f" {ADA}", f"{{{ADA}}}", 7, None],
    ids=["word", "empty", "short", "long", "mixed-hyphens", "padded", "braces", "int", "none"],
)
def test_participants_that_are_not_uuids_are_refused(participant: object) -> None:
    with pytest.raises(ValidationError):
        StartConversation.model_validate({"participants": [BOB, participant]})


@pytest.mark.parametrize("title", ["", "   ", "t" * 201, "a\nb", "a\x00"], ids=["empty", "blank", "long", "nl", "nul"])
def test_invalid_titles_are_refused(title: str) -> None:
    with pytest.raises(ValidationError):
        StartConversation(participants=[ADA, BOB], title=title)


def test_conversation_snapshot_round_trip_is_exact() -> None:
    state = Conversation(participants=(BOB, ADA, CY), title="Plans")

    data = conversations.snapshot(state)

    assert data == {"snapshot_version": 1, "participants": [BOB, ADA, CY], "title": "Plans"}
    assert conversations.restore(json.loads(json.dumps(data))) == state
    assert conversations.restore(conversations.snapshot(Conversation(participants=(ADA, BOB)))).title is None
    with pytest.raises(ValidationError):
        conversations.restore({**data, "snapshot_version": 2})


# --- Submitting a message -----------------------------------------------------------


def test_submitting_a_message_prices_it_by_the_tariff() -> None:
    events = messages.decide(None, submit(tariff=Tariff(base_fee=5, fee_per_recipient=2)))

    assert events == [SUBMITTED]
    assert given(*events) == Message(conversation_id=CHAT, sender=ADA, recipients=(BOB, CY), price=9, currency="EUR")


@pytest.mark.parametrize(
    ("base_fee", "per_recipient", "recipients", "price"),
    [(0, 0, 1, 0), (5, 2, 1, 7), (5, 2, 49, 103), (10**9, 10**9, 49, 50 * 10**9)],
)
def test_the_price_is_the_base_fee_plus_a_fee_per_recipient(
    base_fee: int, per_recipient: int, recipients: int, price: int
) -> None:
    tariff = Tariff(base_fee=base_fee, fee_per_recipient=per_recipient)
    command = submit(recipients=ids(recipients), tariff=tariff)

    events = messages.decide(None, command)

    assert isinstance(events[0], MessageSubmitted)
    assert events[0].price == price == tariff.price(recipients)


@pytest.mark.parametrize("fee", [-1, 10**9 + 1, "5", 1.0, True])
def test_invalid_tariff_fees_are_refused(fee: object) -> None:
    with pytest.raises(ValidationError):
        Tariff.model_validate({"base_fee": fee, "fee_per_recipient": 0})
    with pytest.raises(ValidationError):
        Tariff.model_validate({"base_fee": 0, "fee_per_recipient": fee})


def test_a_message_id_is_submitted_only_once() -> None:
    with pytest.raises(AggregateAlreadyExists) as caught:
        messages.decide(given(SUBMITTED), submit())

    assert caught.value.extras() == {"aggregate_type": messages.NAME}


def test_the_sender_cannot_be_among_the_recipients() -> None:
    with pytest.raises(ValidationError, match="recipients must not include the sender"):
        submit(recipients=[BOB, ADA.upper()])


@pytest.mark.parametrize("recipients", [[], ids(50), [BOB, CY, BOB]], ids=["none", "fifty", "duplicate"])
def test_invalid_recipient_lists_are_refused(recipients: list[str]) -> None:
    with pytest.raises(ValidationError):
        submit(recipients=recipients)


def test_up_to_forty_nine_recipients_are_accepted() -> None:
    assert len(submit(recipients=ids(49)).recipients) == 49


@pytest.mark.parametrize("field", ["conversation_id", "sender"])
def test_conversation_and_sender_must_be_uuids(field: str) -> None:
    with pytest.raises(ValidationError):
        submit(**{field: "chat-1"})


def test_a_body_of_4000_characters_is_accepted_and_kept_as_written() -> None:
    assert submit(body="x" * 4000).body == "x" * 4000
    assert submit(body="  indented\nsecond line\t").body == "  indented\nsecond line\t"


@pytest.mark.parametrize(
    "body",
    ["", "x" * 4001, "   \n\t ", "a\x00b", "a\x1bb", 42, None],
    ids=["empty", "4001", "whitespace-only", "nul", "escape", "int", "none"],
)
def test_invalid_bodies_are_refused(body: object) -> None:
    with pytest.raises(ValidationError):
        submit(body=body)


def test_body_length_counts_characters_not_bytes() -> None:
    # 4000 four-byte characters: 16000 bytes of UTF-8, still 4000 characters.
    assert submit(body="😀" * 4000).body == "😀" * 4000
    with pytest.raises(ValidationError):
        submit(body="😀" * 4001)


def test_an_unknown_currency_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown ISO 4217 currency code"):
        submit(currency="eur")


# --- Delivering, rejecting, reading --------------------------------------------------

DELIVERED = given(SUBMITTED, DELIVERED_EVENT)
REJECTED = given(SUBMITTED, MessageRejected(reason="insufficient funds"))


def test_a_pending_message_is_delivered() -> None:
    events = messages.decide(given(SUBMITTED), DeliverMessage())

    assert events == [DELIVERED_EVENT]
    after = messages.evolve(given(SUBMITTED), events[0])
    assert after.status == "delivered" and after.reason is None


def test_delivering_again_changes_nothing() -> None:
    assert messages.decide(DELIVERED, DeliverMessage()) == []


def test_a_rejected_message_cannot_be_delivered() -> None:
    with pytest.raises(MessageNotPending) as caught:
        messages.decide(REJECTED, DeliverMessage())

    assert caught.value.code == "message-not-pending"
    assert caught.value.extras() == {"message_status": "rejected"}


def test_a_pending_message_is_rejected_with_a_reason() -> None:
    events = messages.decide(given(SUBMITTED), RejectMessage(reason="  insufficient funds "))

    assert events == [MessageRejected(reason="insufficient funds")]
    after = messages.evolve(given(SUBMITTED), events[0])
    assert after.status == "rejected" and after.reason == "insufficient funds"


def test_rejecting_again_changes_nothing() -> None:
    assert messages.decide(REJECTED, RejectMessage(reason="again")) == []


def test_a_delivered_message_cannot_be_rejected() -> None:
    with pytest.raises(MessageNotPending) as caught:
        messages.decide(DELIVERED, RejectMessage(reason="too late"))

    assert caught.value.extras() == {"message_status": "delivered"}


@pytest.mark.parametrize("reason", ["", "  ", "r" * 501])
def test_invalid_reasons_are_refused(reason: str) -> None:
    with pytest.raises(ValidationError):
        RejectMessage(reason=reason)


def test_a_recipient_marks_a_delivered_message_read() -> None:
    events = messages.decide(DELIVERED, MarkRead(reader=BOB.upper()))

    assert events == [MessageRead(reader=BOB)]
    after = messages.evolve(DELIVERED, events[0])
    assert after.read_by == frozenset({BOB})
    assert messages.decide(after, MarkRead(reader=CY)) == [MessageRead(reader=CY)]


def test_reading_again_changes_nothing() -> None:
    assert messages.decide(given(SUBMITTED, DELIVERED_EVENT, MessageRead(reader=BOB)), MarkRead(reader=BOB)) == []


@pytest.mark.parametrize("state", [given(SUBMITTED), REJECTED], ids=["pending", "rejected"])
def test_only_a_delivered_message_can_be_read(state: Message | None) -> None:
    with pytest.raises(MessageNotDelivered) as caught:
        messages.decide(state, MarkRead(reader=BOB))

    assert state is not None
    assert caught.value.code == "message-not-delivered"
    assert caught.value.extras() == {"message_status": state.status}


@pytest.mark.parametrize("reader", [ADA, EVE], ids=["sender", "stranger"])
def test_only_a_recipient_can_mark_a_message_read(reader: str) -> None:
    for state in (DELIVERED, given(SUBMITTED)):
        with pytest.raises(NotARecipient) as caught:
            messages.decide(state, MarkRead(reader=reader))

        assert caught.value.code == "not-a-recipient"
        assert caught.value.extras() == {"reader": reader}


@pytest.mark.parametrize(
    "command",
    [DeliverMessage(), RejectMessage(reason="declined"), MarkRead(reader=BOB)],
    ids=["deliver", "reject", "read"],
)
def test_commands_on_an_unsubmitted_message_are_refused_as_not_found(command: MessageCommand) -> None:
    with pytest.raises(MessageNotFound) as caught:
        messages.decide(None, command)

    assert isinstance(caught.value, AggregateNotFound)
    assert caught.value.code == "not-found"
    assert caught.value.extras() == {"aggregate_type": messages.NAME}


def test_evolve_refuses_events_before_the_message_is_submitted() -> None:
    with pytest.raises(ValueError):
        messages.evolve(None, DELIVERED_EVENT)


def test_every_new_error_has_a_distinct_code_and_title() -> None:
    errors: list[DomainError] = [
        MessageNotFound(aggregate_id="m-1"),
        MessageNotPending(message_status="rejected"),
        MessageNotDelivered(message_status="pending_payment"),
        NotARecipient(reader=EVE),
    ]

    assert all(error.code and error.title and error.detail == str(error) for error in errors)
    assert len({error.code for error in errors}) == len(errors)
    assert errors[0].extras() == {"aggregate_type": "Message", "aggregate_id": "m-1"}


# --- Snapshots ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        given(SUBMITTED),
        given(SUBMITTED, MessageRejected(reason="insufficient funds: balance 5, price 9")),
        given(SUBMITTED, DELIVERED_EVENT, MessageRead(reader=CY), MessageRead(reader=BOB)),
    ],
    ids=["pending", "rejected", "read"],
)
def test_message_snapshot_round_trip_is_exact(state: Message | None) -> None:
    assert state is not None

    data = messages.snapshot(state)

    assert messages.restore(data) == state
    assert messages.restore(json.loads(json.dumps(data))) == state


def test_message_snapshot_lists_readers_in_sorted_order() -> None:
    state = given(SUBMITTED, DELIVERED_EVENT, MessageRead(reader=CY), MessageRead(reader=BOB))
    assert state is not None

    assert messages.snapshot(state) == {
        "snapshot_version": 1,
        "conversation_id": CHAT,
        "sender": ADA,
        "recipients": [BOB, CY],
        "price": 9,
        "currency": "EUR",
        "status": "delivered",
        "reason": None,
        "read_by": [BOB, CY],
    }


def test_a_corrupt_message_snapshot_is_refused() -> None:
    state = given(SUBMITTED)
    assert state is not None
    data = messages.snapshot(state)

    for corrupt in ({"price": "9"}, {"status": "sent"}, {"snapshot_version": 2}, {"extra": 1}):
        with pytest.raises(ValidationError):
            messages.restore({**data, **corrupt})


# --- Registries and serialisation ----------------------------------------------------

MESSAGE_EVENT = TypeAdapter[Any](MessageEvent)
MESSAGE_COMMAND = TypeAdapter[Any](MessageCommand)


def test_events_round_trip_through_json_by_discriminator() -> None:
    events: list[MessageEvent] = [SUBMITTED, DELIVERED_EVENT, MessageRejected(reason="r"), MessageRead(reader=BOB)]

    for event in events:
        assert MESSAGE_EVENT.validate_json(event.model_dump_json()) == event


def test_commands_parse_by_their_type_discriminator() -> None:
    assert MESSAGE_COMMAND.validate_python({"type": "DeliverMessage"}) == DeliverMessage()
    assert MESSAGE_COMMAND.validate_json(submit().model_dump_json()) == submit()
    with pytest.raises(ValidationError):
        MESSAGE_COMMAND.validate_python({"type": "DeliverMessage", "force": True})


def test_type_registries_map_each_discriminator_to_its_class() -> None:
    registries = (conversations.KIND.commands, conversations.KIND.events, messages.KIND.commands, messages.KIND.events)
    for registry in registries:
        for name, cls in registry.items():
            assert cls.model_fields["type"].default == name
    assert set(messages.KIND.commands) == {"SubmitMessage", "DeliverMessage", "RejectMessage", "MarkRead"}
    assert set(messages.KIND.events) == {"MessageSubmitted", "MessageDelivered", "MessageRejected", "MessageRead"}
    assert set(conversations.KIND.commands) == {"StartConversation", "ForgetSubject"}
    assert set(conversations.KIND.events) == {"ConversationStarted", "SubjectForgotten"}


def test_both_aggregates_are_registered() -> None:
    assert AGGREGATES[conversations.NAME].decide is conversations.decide
    assert AGGREGATES[messages.NAME].evolve is messages.evolve
    assert AGGREGATES[messages.NAME].commands is messages.KIND.commands


# --- Properties ---------------------------------------------------------------------

# The sender and a stranger alongside the recipients, so NotARecipient happens too.
follow_ups: st.SearchStrategy[MessageCommand] = st.one_of(
    st.just(DeliverMessage()),
    st.builds(RejectMessage, reason=st.sampled_from(["insufficient funds", "account closed"])),
    st.builds(MarkRead, reader=st.sampled_from([BOB, CY, ADA, EVE])),
    st.just(submit()),
)

ALLOWED_MOVES = {
    ("pending_payment", "pending_payment"),
    ("pending_payment", "delivered"),
    ("pending_payment", "rejected"),
    ("delivered", "delivered"),
    ("rejected", "rejected"),
}


@settings(max_examples=300, deadline=None)
@for_all(st.lists(follow_ups, max_size=30))
def test_status_only_moves_forward_from_pending_and_refusals_are_domain_errors(
    script: list[MessageCommand],
) -> None:
    state = messages.evolve(None, messages.decide(None, submit())[0])
    reached = {state.status}

    for command in script:
        before = state
        try:
            events = messages.decide(state, command)
        except DomainError as error:
            assert error.code and error.title and error.detail
            continue  # any other exception fails the test
        for event in events:
            state = messages.evolve(state, event)
        assert (before.status, state.status) in ALLOWED_MOVES
        assert state.read_by <= set(state.recipients)
        assert not state.read_by or state.status == "delivered"
        reached.add(state.status)
        assert messages.restore(messages.snapshot(state)) == state

    # Never both settled outcomes in one message's life.
    assert not {"delivered", "rejected"} <= reached
