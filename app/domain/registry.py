"""Every aggregate kind the write side can host, by name.

The processor looks up an incoming command's `aggregate_type` here to find how
to decide, evolve and snapshot it; nothing else about the domain leaks into
the event store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.domain import accounts, conversations, messages
from app.domain.base import Command, Event


@dataclass(frozen=True, slots=True)
class AggregateKind:
    name: str
    commands: Mapping[str, type[Command]]
    events: Mapping[str, type[Event]]
    decide: Callable[[Any, Any], list[Any]]
    evolve: Callable[[Any, Any], Any]
    snapshot: Callable[[Any], dict[str, object]]
    restore: Callable[[Mapping[str, object]], Any]


ACCOUNT = AggregateKind(
    name=accounts.AGGREGATE_TYPE,
    commands=accounts.COMMAND_TYPES,
    events=accounts.EVENT_TYPES,
    decide=accounts.decide,
    evolve=accounts.evolve,
    snapshot=accounts.snapshot,
    restore=accounts.restore,
)

CONVERSATION = AggregateKind(
    name=conversations.CONVERSATION_TYPE,
    commands=conversations.CONVERSATION_COMMAND_TYPES,
    events=conversations.CONVERSATION_EVENT_TYPES,
    decide=conversations.decide_conversation,
    evolve=conversations.evolve_conversation,
    snapshot=conversations.snapshot_conversation,
    restore=conversations.restore_conversation,
)

MESSAGE = AggregateKind(
    name=messages.MESSAGE_TYPE,
    commands=messages.MESSAGE_COMMAND_TYPES,
    events=messages.MESSAGE_EVENT_TYPES,
    decide=messages.decide_message,
    evolve=messages.evolve_message,
    snapshot=messages.snapshot_message,
    restore=messages.restore_message,
)

AGGREGATES: Mapping[str, AggregateKind] = {kind.name: kind for kind in (ACCOUNT, CONVERSATION, MESSAGE)}
