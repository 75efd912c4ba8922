"""Page cursors round-trip within their columns' bounds, and anything else is a 400 problem."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.api import cursors
from app.api.errors import Problem

KINDS = [cursors.LEDGER, cursors.EVENTS_BY_POSITION, cursors.EVENTS_BY_VERSION, cursors.TIMELINE]


def forged(*values: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def refused(kind: cursors.CursorKind, cursor: str) -> bool:
    with pytest.raises(Problem) as caught:
        kind.decode(cursor)
    return caught.value.status == 400 and caught.value.slug == "invalid-cursor"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.tag)
@given(data=st.data())
def test_every_value_within_the_bounds_round_trips(kind: cursors.CursorKind, data: st.DataObject) -> None:
    values = tuple(data.draw(st.integers(0, bound)) for bound in kind.bounds)
    assert kind.decode(kind.encode(*values)) == values


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.tag)
@given(data=st.data())
def test_a_value_past_its_bound_or_below_zero_is_refused(kind: cursors.CursorKind, data: st.DataObject) -> None:
    values: list[int] = [data.draw(st.integers(0, bound)) for bound in kind.bounds]
    spoiled = data.draw(st.integers(0, len(values) - 1))
    bound = kind.bounds[spoiled]
    below = st.integers(-(2**63), -1)
    # JSON numbers past 64 bits are refused by the parser (test_malformed_cursors_are_refused).
    above = st.integers(bound + 1, 2**64 - 1) if bound < 2**64 - 1 else below
    values[spoiled] = data.draw(st.one_of(above, below))
    assert refused(kind, forged(kind.tag, *values))


def test_the_reproductions_of_issue_13_are_refused() -> None:
    assert refused(cursors.LEDGER, "WzIxNDc0ODM2NDhd")  # [2147483648]: a version past int4, untagged
    assert refused(cursors.LEDGER, forged("ledger", 2**31))
    assert refused(cursors.EVENTS_BY_POSITION, forged("log", 0, 2**63))
    assert refused(cursors.TIMELINE, forged("timeline", 10**18, 0, 0))  # past year 9999


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not-a-cursor",
        "%%%",
        forged(),
        forged("ledger"),
        forged("ledger", 1, 2),
        forged("log", 1),  # another kind's tag
        forged("ledger", True),
        forged("ledger", 1.5),
        forged("ledger", "1"),
        forged({"ledger": 1}),
        base64.urlsafe_b64encode(b'["ledger", 18446744073709551616]').decode(),  # past 64 bits
    ],
)
def test_malformed_cursors_are_refused(cursor: str) -> None:
    assert refused(cursors.LEDGER, cursor)


def test_a_timeline_cursor_names_a_delivery_time_and_a_message() -> None:
    at, message_id = datetime(2026, 12, 2, 6, 30, 1, 123456, tzinfo=UTC), str(uuid.uuid4())
    assert cursors.decode_timeline(cursors.encode_timeline(at, message_id)) == (at, message_id)
    assert cursors.decode_timeline(None) is None
    last = cursors.TIMELINE.encode(*cursors.TIMELINE.bounds)
    decoded = cursors.decode_timeline(last)
    assert decoded is not None and decoded[0] == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
