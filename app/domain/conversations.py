"""The Conversation aggregate: a fixed set of participants, started once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Final, Literal, assert_never

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StringConstraints

from .base import Command, Event
from .errors import AggregateAlreadyExists, ConversationNotFound, SubjectIsForgotten
from .forgetting import ForgetSubject, SubjectForgotten
from .kind import AggregateKind
from .messaging import MAX_PARTICIPANTS, MIN_PARTICIPANTS, AccountId, distinct
from .personal import Personal
from .text import no_control_characters, visible

NAME: Final = "Conversation"


# --- Vocabulary ---------------------------------------------------------------------

Title = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=200, strip_whitespace=True),
    AfterValidator(no_control_characters),
    AfterValidator(visible),
]

Participants = Annotated[
    list[AccountId],
    Strict(),
    Field(min_length=MIN_PARTICIPANTS, max_length=MAX_PARTICIPANTS),
    AfterValidator(distinct),
]


# --- Commands and events ------------------------------------------------------------


class StartConversation(Command):
    type: Literal["StartConversation"] = "StartConversation"
    participants: Participants
    title: Annotated[Title | None, Personal("conversation")] = None


ConversationCommand = Annotated[StartConversation | ForgetSubject, Field(discriminator="type")]


class ConversationStarted(Event):
    type: Literal["ConversationStarted"] = "ConversationStarted"
    participants: list[str]
    title: Annotated[str | None, Personal("conversation")] = None


ConversationEvent = Annotated[ConversationStarted | SubjectForgotten, Field(discriminator="type")]


# --- State, decide, evolve ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conversation:
    participants: tuple[str, ...]
    title: str | None = None
    # Forgotten (app.domain.forgetting): its title is erased everywhere; it takes no more commands.
    forgotten: bool = False


def decide(state: Conversation | None, command: ConversationCommand) -> list[ConversationEvent]:
    if state is not None and state.forgotten:
        if isinstance(command, ForgetSubject):
            return []  # forgetting again changes nothing
        raise SubjectIsForgotten(aggregate_type=NAME)
    match command:
        case StartConversation():
            return _start(state, command)
        case ForgetSubject():
            if state is None:
                raise ConversationNotFound()
            return [SubjectForgotten(requested_by=command.requested_by)]
        case _:
            assert_never(command)


def _start(state: Conversation | None, command: StartConversation) -> list[ConversationEvent]:
    if state is not None:
        raise AggregateAlreadyExists(aggregate_type=NAME)
    return [ConversationStarted(participants=list(command.participants), title=command.title)]


def evolve(state: Conversation | None, event: ConversationEvent) -> Conversation:
    match event:
        case ConversationStarted():
            return Conversation(participants=tuple(event.participants), title=event.title)
        case SubjectForgotten():
            if state is None:
                raise ValueError("SubjectForgotten cannot apply before ConversationStarted")
            return replace(state, forgotten=True)
        case _:
            assert_never(event)


# --- Snapshot serde -----------------------------------------------------------------

SNAPSHOT_VERSION: Final = 1


class _ConversationSnapshot(BaseModel):
    # Strict: a snapshot is our own output, so any coercion would hide corruption.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    snapshot_version: Literal[1]
    participants: list[str]
    title: str | None
    forgotten: bool = False


def snapshot(state: Conversation) -> dict[str, object]:
    """JSON-safe dict; participants keep their order (it is the order they were given in)."""
    return {
        "snapshot_version": SNAPSHOT_VERSION,
        "participants": list(state.participants),
        "title": state.title,
        **({"forgotten": True} if state.forgotten else {}),
    }


def restore(data: Mapping[str, object]) -> Conversation:
    parsed = _ConversationSnapshot.model_validate(dict(data))
    return Conversation(participants=tuple(parsed.participants), title=parsed.title, forgotten=parsed.forgotten)


KIND: Final[AggregateKind[Conversation, ConversationCommand, ConversationEvent]] = AggregateKind(
    name=NAME,
    command_union=ConversationCommand,
    event_union=ConversationEvent,
    decide=decide,
    evolve=evolve,
    snapshot=snapshot,
    restore=restore,
)
