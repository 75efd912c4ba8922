"""Free-text rules are the domain's: a command built anywhere, not only over HTTP, is held to them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import BaseModel, ValidationError

from app.api.schemas import AmountRequest, OpenAccountRequest, StartConversationRequest, SubmitMessageRequest
from app.domain.accounts import Charge, Deposit, OpenAccount, Refund, Withdraw
from app.domain.conversations import StartConversation
from app.domain.messages import DEFAULT_TARIFF, SubmitMessage
from app.domain.text import no_control_characters, printable, visible

ADA = "0a0a0a0a-0000-4000-8000-000000000001"
BOB = "0b0b0b0b-0000-4000-8000-000000000002"
CHAT = "c0c0c0c0-0000-4000-8000-0000000000c0"

# Every free-text field of every command, each built straight from the domain.
COMMANDS: dict[str, Callable[[str], BaseModel]] = {
    "owner": lambda text: OpenAccount(owner=text, currency="EUR"),
    "deposit reference": lambda text: Deposit(amount=1, reference=text),
    "withdrawal reference": lambda text: Withdraw(amount=1, reference=text),
    "charge reference": lambda text: Charge(amount=1, reference=text),
    "refund reference": lambda text: Refund(reference=text),
    "title": lambda text: StartConversation(participants=[ADA, BOB], title=text),
    "body": lambda text: SubmitMessage(
        conversation_id=CHAT, sender=ADA, recipients=[BOB], body=text, currency="EUR", tariff=DEFAULT_TARIFF
    ),
}

# Right-to-left marks, a zero-width space, a byte-order mark, and whitespace around them.
INVISIBLE = ["\u200f\u202e\u200f", "\u200b", "\ufeff", " \u200b\u00a0"]
CONTROL = ["Ada\x00", "a\x1bb", "\x7fAda", "Ad\x85a"]


@pytest.mark.parametrize("text", INVISIBLE)
@pytest.mark.parametrize("field", COMMANDS)
def test_text_of_only_invisible_characters_is_refused_as_blank(field: str, text: str) -> None:
    with pytest.raises(ValidationError, match="must not be blank"):
        COMMANDS[field](text)


@pytest.mark.parametrize("text", CONTROL)
@pytest.mark.parametrize("field", COMMANDS)
def test_text_with_control_characters_is_refused(field: str, text: str) -> None:
    with pytest.raises(ValidationError, match="must not contain control characters"):
        COMMANDS[field](text)


@pytest.mark.parametrize("field", COMMANDS)
def test_visible_text_keeps_its_format_characters_and_emoji(field: str) -> None:
    text = "שלום \u200f😀 Ada"

    command = COMMANDS[field](text)

    assert text in command.model_dump().values()


def test_visible_refuses_only_text_with_nothing_to_see() -> None:
    assert visible("\u200fA") == "\u200fA"
    for blank in ["", " \t\n", *INVISIBLE]:
        with pytest.raises(ValueError, match="must not be blank"):
            visible(blank)


def test_control_character_rules_refuse_c0_c1_and_delete_but_not_format_characters() -> None:
    assert no_control_characters("a\u200fb") == printable("a\u200fb") == "a\u200fb"
    for text in CONTROL:
        with pytest.raises(ValueError) as refused:
            no_control_characters(text)
        assert str(refused.value) == "must not contain control characters"
        with pytest.raises(ValueError) as refused:
            printable(text)
        assert str(refused.value) == "must not contain control characters or lone surrogates"


# The HTTP request models reuse the domain types: each refuses what its command refuses, with the same message.
REQUESTS: list[tuple[str, Callable[[str], BaseModel]]] = [
    ("owner", lambda text: OpenAccountRequest(owner=text, currency="EUR")),
    ("deposit reference", lambda text: AmountRequest(amount=1, reference=text)),
    ("title", lambda text: StartConversationRequest(participants=[ADA, BOB], title=text)),
    ("body", lambda text: SubmitMessageRequest(sender=ADA, body=text)),
]


@pytest.mark.parametrize("text", [*INVISIBLE, *CONTROL, "   ", "a\nb"])
@pytest.mark.parametrize(("field", "request_for"), REQUESTS, ids=[field for field, _ in REQUESTS])
def test_a_request_is_refused_for_the_same_text_and_reason_as_its_command(
    field: str, request_for: Callable[[str], BaseModel], text: str
) -> None:
    assert refusals(request_for, text) == refusals(COMMANDS[field], text)


def refusals(build: Callable[[str], BaseModel], text: str) -> list[str]:
    try:
        build(text)
    except ValidationError as invalid:
        return [error["msg"] for error in invalid.errors()]
    return []
