"""The one contract every aggregate module fulfils: a `KIND` that says how to decide, evolve and snapshot it.

Each aggregate module (accounts.py, conversations.py, messages.py) exports the
same names — `NAME`, `decide`, `evolve`, `snapshot`, `restore` — and one
`KIND: Final[AggregateKind[State, Command, Event]] = AggregateKind(...)` built
from them, typed end to end (annotated rather than called as
`AggregateKind[...](...)`: calling the alias sets an attribute on the frozen
instance). The command and event types by name are derived from the discriminated
unions, so a new command is added in one place: its union.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from app.domain.base import Command, Event

State = TypeVar("State")
C = TypeVar("C", bound=Command)
E = TypeVar("E", bound=Event)


@dataclass(frozen=True, slots=True)
class AggregateKind(Generic[State, C, E]):
    name: str
    # The discriminated unions of the aggregate's commands and events (Annotated[A | B, Field(...)]).
    command_union: Any
    event_union: Any
    decide: Callable[[State | None, C], list[E]]
    evolve: Callable[[State | None, E], State]
    snapshot: Callable[[State], dict[str, object]]
    restore: Callable[[Mapping[str, object]], State]
    commands: Mapping[str, type[C]] = field(init=False)
    events: Mapping[str, type[E]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "commands", by_name(self.command_union))
        object.__setattr__(self, "events", by_name(self.event_union))


def members(union: Any) -> tuple[type[Any], ...]:
    """The classes of `Annotated[A | B | …, Field(discriminator=…)]` (or of a plain `A | B`)."""
    if get_origin(union) is Annotated:
        union = get_args(union)[0]
    found = get_args(union) if get_origin(union) in (Union, type(int | str)) else (union,)
    return tuple(found)


def by_name(union: Any) -> dict[str, type[Any]]:
    return {cls.__name__: cls for cls in members(union)}
