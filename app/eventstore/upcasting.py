"""Schema evolution: old event payloads are turned into the current shape when they are read.

Events are never rewritten. When an event type's payload changes, its model's
`schema_version` grows and an upcaster from the previous version is
registered here; every reader (projections, the saga, `/events`) decodes
through `upcast`, so handlers only ever see the current shape.

    @upcaster("FundsDeposited", from_version=1)
    def _deposit_v1_to_v2(data):
        return {**data, "channel": "unknown"}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from app.eventstore.envelope import EventEnvelope

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (event type, version it reads) → the function that returns the next version's payload.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(function: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in UPCASTERS:
            raise ValueError(f"two upcasters for {event_type} v{from_version}")
        UPCASTERS[key] = function
        return function

    return register


def upcast(event: EventEnvelope) -> EventEnvelope:
    """The event with its payload brought to the newest version there is an upcaster chain for."""
    data, version = event.data, event.schema_version
    while (step := UPCASTERS.get((event.type, version))) is not None:
        data, version = step(data), version + 1
    if version == event.schema_version:
        return event
    return replace(event, data=data, schema_version=version)
