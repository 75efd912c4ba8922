"""Old event payloads reach readers in the current shape; events themselves are never rewritten."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.eventstore.envelope import EventEnvelope
from app.eventstore.upcasting import UPCASTERS, upcast, upcaster
from projections.base import decode_event


def envelope(version: int, data: dict[str, object]) -> EventEnvelope:
    return EventEnvelope("e-1", "Renamed", version, "Thing", "t-1", 1, "2026-11-25T12:00:00Z", "c", "c", "c", data)


@pytest.fixture
def chain() -> Iterator[None]:
    @upcaster("Renamed", from_version=1)
    def _v1(data: dict[str, object]) -> dict[str, object]:
        return {"full_name": data["name"]}

    @upcaster("Renamed", from_version=2)
    def _v2(data: dict[str, object]) -> dict[str, object]:
        return {**data, "nickname": None}

    yield
    UPCASTERS.pop(("Renamed", 1))
    UPCASTERS.pop(("Renamed", 2))


def test_an_old_payload_is_upcast_through_every_step(chain: None) -> None:
    upcasted = upcast(envelope(1, {"name": "Ada"}))
    assert (upcasted.schema_version, upcasted.data) == (3, {"full_name": "Ada", "nickname": None})


def test_a_current_payload_is_returned_as_it_is(chain: None) -> None:
    current = envelope(3, {"full_name": "Ada", "nickname": "A"})
    assert upcast(current) is current


def test_readers_decode_through_the_upcasters(chain: None) -> None:
    assert decode_event(envelope(2, {"full_name": "Ada"}).encode()).data == {"full_name": "Ada", "nickname": None}


def test_two_upcasters_for_one_version_are_refused(chain: None) -> None:
    with pytest.raises(ValueError, match="two upcasters"):
        upcaster("Renamed", from_version=1)(lambda data: data)
