"""Page cursors: opaque to clients, strictly checked when they come back.

A cursor is the sort key of the last row of a page, tagged with its kind,
base64url-encoded. It names only a place a client could reach by paging, so it
needs no signature (the query behind it is authorised like any other); what it
needs is that anything else — forged, truncated, of another kind, or holding a
number its column cannot (a version past int4, a log offset past int8, a time
past year 9999) — is a 400 problem, never a database error or a 500.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from app.api.errors import Problem

INT4 = 2**31 - 1  # PostgreSQL integer: versions, partitions
INT8 = 2**63 - 1  # PostgreSQL bigint: log offsets
UINT64 = 2**64 - 1  # half of a UUID
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LAST_MICROSECOND = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class CursorKind:
    tag: str
    bounds: tuple[int, ...]  # the largest value of each field; every field is ≥ 0

    def encode(self, *values: int) -> str:
        return base64.urlsafe_b64encode(orjson.dumps([self.tag, *values])).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[int, ...]:
        try:
            decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (ValueError, binascii.Error) as error:  # orjson's error is a ValueError
            raise invalid_cursor() from error
        if not isinstance(decoded, list) or len(decoded) != len(self.bounds) + 1 or decoded[0] != self.tag:
            raise invalid_cursor()
        values = decoded[1:]
        if not all(type(v) is int and 0 <= v <= bound for v, bound in zip(values, self.bounds, strict=True)):
            raise invalid_cursor()
        return tuple(values)


LEDGER = CursorKind("ledger", (INT4,))  # before this version
EVENTS_BY_POSITION = CursorKind("log", (INT4, INT8))  # after (partition, offset)
EVENTS_BY_VERSION = CursorKind("aggregate", (INT4, INT4))  # after (partition, version) of one aggregate
TIMELINE = CursorKind("timeline", (LAST_MICROSECOND, UINT64, UINT64))  # (delivered at, message id)


def encode_timeline(at: datetime, message_id: str) -> str:
    number = uuid.UUID(message_id).int
    return TIMELINE.encode((at - EPOCH) // timedelta(microseconds=1), number >> 64, number & UINT64)


def decode_timeline(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    micros, high, low = TIMELINE.decode(cursor)
    return EPOCH + timedelta(microseconds=micros), str(uuid.UUID(int=(high << 64) | low))


def invalid_cursor() -> Problem:
    return Problem(400, "invalid-cursor", "Invalid cursor", detail="pass back a next_cursor unchanged")
