"""Every aggregate kind the write side can host, by name.

The processor looks up an incoming command's `aggregate_type` here to find how
to decide, evolve and snapshot it; nothing else about the domain leaks into
the event store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.domain import accounts, messaging
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
    name=messaging.CONVERSATION_TYPE,
    commands=messaging.CONVERSATION_COMMAND_TYPES,
    events=messaging.CONVERSATION_EVENT_TYPES,
    decide=messaging.decide_conversation,
    evolve=messaging.evolve_conversation,
    snapshot=messaging.snapshot_conversation,
    restore=messaging.restore_conversation,
)

MESSAGE = AggregateKind(
    name=messaging.MESSAGE_TYPE,
    commands=messaging.MESSAGE_COMMAND_TYPES,
    events=messaging.MESSAGE_EVENT_TYPES,
    decide=messaging.decide_message,
    evolve=messaging.evolve_message,
    snapshot=messaging.snapshot_message,
    restore=messaging.restore_message,
)

AGGREGATES: Mapping[str, AggregateKind] = {kind.name: kind for kind in (ACCOUNT, CONVERSATION, MESSAGE)}
