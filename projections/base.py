"""What a projection is: a name, a topic, its tables, and a bulk `apply` per batch.

A projection module builds the rows of one read model from a batch of
messages and writes them with a few bulk statements; the runner wraps each
batch in one database transaction together with the checkpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ARRAY, Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.base import Event
from app.domain.registry import AGGREGATES
from app.eventstore.envelope import EventEnvelope, domain_event
from app.eventstore.upcasting import upcast


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A record that could not be decoded. It never reaches a projection: the runner records it in the
    failures table in the transaction that applies the rest of its batch, and goes on (runner.Work.junk)."""

    raw: str
    error: str


class UndecodableRecord(ValueError):
    pass


NOT_DECLARED = object()  # `Message.decoded` of an event no aggregate declares


@dataclass(slots=True)
class Message:
    """One record of one of the projection's topics, decoded, with where it came from.

    Read-only by convention, not frozen: a frozen dataclass sets each field through
    `object.__setattr__`, which made building one 0.87 µs against 0.21 µs, once per event a runner
    reads (a rebuild reads millions). No projection assigns to a message's fields.
    """

    topic: str  # without the namespace
    partition: int
    offset: int
    value: Any  # EventEnvelope for event projections, a dict for the others
    # `fact`, once one projection has asked: the runner hands the same messages to every projection.
    decoded: Any = field(default=None, compare=False, repr=False)

    @property
    def event(self) -> EventEnvelope:
        if isinstance(self.value, Undecodable):
            raise UndecodableRecord(f"{self.topic}[{self.partition}]@{self.offset}: {self.value.error}")
        assert isinstance(self.value, EventEnvelope)
        return self.value

    @property
    def fact(self) -> Event | None:
        """The event as its domain class, which projections match on (not on `type` strings and dict
        keys: a renamed field then fails in the type checker, not in the failures table).

        None for a type no aggregate declares (written by a newer version): every projection passes
        it by, as it passes by the events it does not build from. Data that is not its type's raises,
        which makes the event a poison event like any other that cannot be applied.
        """
        if self.decoded is not None:
            return self.decoded if isinstance(self.decoded, Event) else None
        event = self.event
        kind = AGGREGATES.get(event.aggregate_type)
        fact = domain_event(event) if kind is not None and event.type in kind.events else None
        self.decoded = NOT_DECLARED if fact is None else fact
        return fact


Apply = Callable[[AsyncConnection, Sequence[Message]], Awaitable[None]]
# A rebuild's way into an insert-only projection's fresh tables (no index, no row yet): (connection, schema, …).
BulkApply = Callable[[AsyncConnection, str, Sequence[Message]], Awaitable[None]]
Decode = Callable[[bytes], Any]


def decode_record(decode: Decode, raw: bytes | None) -> Any:
    try:
        return decode(raw or b"")
    except Exception as error:  # whatever the bytes were, this record must not stop the runner
        return Undecodable(raw=(raw or b"")[:2000].decode("utf-8", "replace"), error=repr(error))


def decode_event(raw: bytes) -> EventEnvelope:
    """Decode an event and bring its payload to the current schema (app/eventstore/upcasting.py)."""
    return upcast(EventEnvelope.decode(raw))


@dataclass(frozen=True, slots=True)
class Projection:
    name: str
    tables: tuple[Table, ...]
    apply: Apply
    # Topic (without namespace) → how to decode its records. Most read models read only events.
    topics: Mapping[str, Decode] = field(default_factory=lambda: {"events": decode_event})
    # The key columns per table, used by a rebuild to compare rows one by one.
    keys: Mapping[str, tuple[str, ...]] | None = None
    # Why a rebuild can rightly differ from the live tables (say, it reads topics with a retention).
    replay_note: str | None = None
    # Its apply only inserts, keeping any row already there (insert_rows): a rebuild then fills
    # fresh tables without indexes and builds them once, after the replay (projections/rebuild.py).
    insert_only: bool = False
    # With insert_only: how the rebuild's replay fills those tables instead of `apply` (COPY).
    bulk_apply: BulkApply | None = None

    def key_columns(self, table: Table) -> tuple[str, ...]:
        if self.keys and table.name in self.keys:
            return self.keys[table.name]
        return tuple(column.name for column in table.primary_key.columns)


def _from_unnest(table: Table) -> Any:
    """`INSERT INTO table SELECT FROM unnest(<one array parameter per column>)`."""
    columns = list(table.columns)
    arrays = func.unnest(*[bindparam(f"all_{c.name}", type_=ARRAY(c.type)) for c in columns])
    rows = arrays.table_valued(*[c.name for c in columns]).render_derived(name="rows")
    return insert(table).from_select([c.name for c in columns], select(*rows.c))


@cache
def _unnest_insert(table: Table) -> Insert:
    return _from_unnest(table).on_conflict_do_nothing()  # type: ignore[no-any-return]


@cache
def _unnest_upsert(table: Table, key: tuple[str, ...], updated: tuple[str, ...]) -> Insert:
    statement = _from_unnest(table)
    return statement.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[table.c[name] for name in key], set_={name: statement.excluded[name] for name in updated}
    )


def _arrays(table: Table, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {f"all_{c.name}": [row[c.name] for row in rows] for c in table.columns}


async def insert_rows(connection: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows (each with every column), keeping any row already there.

    One statement, `INSERT … SELECT FROM unnest(<one array per column>)`, whatever
    the number of rows: its text never changes, so it is prepared once, and
    PostgreSQL takes a batch of thousands in one execution instead of one each.
    """
    if rows:
        await connection.execute(_unnest_insert(table), _arrays(table, rows))


async def upsert_rows(
    connection: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: tuple[str, ...],
    updated: tuple[str, ...],
) -> None:
    """Insert rows (each with every column); a row already there by `key` takes their `updated` columns.

    The same one statement as `insert_rows` (prepared once, whatever the number of rows), so
    no two of `rows` may share a key: PostgreSQL refuses to update a row twice in one statement.
    """
    if rows:
        await connection.execute(_unnest_upsert(table, key, updated), _arrays(table, rows))


async def copy_rows(connection: AsyncConnection, schema: str, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY rows (each a tuple in the table's column order) into `schema.table`, in the connection's
    transaction: PostgreSQL's bulk path, with no conflict handling, so only for a table that cannot
    hold any of them yet (a rebuild's fresh copy; its unique keys come after, deferred_indexes.py)."""
    if rows:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=rows, columns=[c.name for c in table.columns], schema_name=schema
        )


def occurred_at(event: EventEnvelope) -> datetime:
    return datetime.fromisoformat(event.occurred_at)
