"""Read models show personal fields opened, or `[erased]` for a forgotten subject.

Events hold personal fields sealed (app/privacy, docs/privacy.md). Whatever reads
them for a read model (the live runner, a rebuild's replay and its catch-up)
opens each batch's events here once, before any projection sees them, so no
projection handles a sealed value or a key.

A forget (`SubjectForgotten`, app.domain.forgetting) reaches the read models as
an event. Two things make every row of the subject show `[erased]` afterwards,
whatever order the projector reads partitions in:

- `learn_forgets` (`opened_batch` for a runner's batch): before a batch is
  opened, each forget in it is known to the key store at once (its keys were destroyed in the same transaction as the
  fact), so nothing in this batch or any later one opens the subject's values;
- each projection erases in place the values it stored before (its own
  module, plus `erase_event_data` for tables that keep events whole, and
  `erase_failures` for poison events kept as the projector saw them).

A rebuild reads the key store after the forget, so it never opens them at all;
`eventline rebuild --verify` then finds the same rows as the live tables.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy import Table, Text, case, cast, func, literal, null, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.forgetting import FORGOTTEN_EVENT
from app.domain.personal import SENDER_FIELD, personal_fields
from app.domain.registry import AGGREGATES
from app.eventstore.envelope import EventEnvelope
from app.privacy.key_store import KeyStore
from app.privacy.personal_data import holds_personal_data, open_event
from app.privacy.sealing import ERASED
from projections.base import Message
from projections.tables import failures

Slot = TypeVar("Slot", bound=Hashable)  # where a batch's messages came from (the runner's partition and decoder)


def forgotten_subjects(messages: Iterable[Message]) -> list[str]:
    """The subjects forgotten by the events among `messages`, in log order."""
    return [
        m.value.aggregate_id for m in messages if isinstance(m.value, EventEnvelope) and m.value.type == FORGOTTEN_EVENT
    ]


def forgotten_of(messages: Iterable[Message], aggregate_type: str) -> list[str]:
    """The `aggregate_type` subjects forgotten by the events among `messages`: what a projection erases."""
    return [
        m.value.aggregate_id
        for m in messages
        if isinstance(m.value, EventEnvelope)
        and m.value.type == FORGOTTEN_EVENT
        and m.value.aggregate_type == aggregate_type
    ]


def learn_forgets(messages: Iterable[Message], keys: KeyStore | None) -> None:
    """Know each subject forgotten in these messages as forgotten, before any of them is opened."""
    if keys is not None:
        for subject_id in forgotten_subjects(messages):
            keys.forget_locally(subject_id)


async def opened(messages: Sequence[Message], keys: KeyStore | None) -> list[Message]:
    """The messages with their events' personal fields opened (unchanged when sealing is off)."""
    learn_forgets(messages, keys)
    return await opened_after_learning(messages, keys)


async def opened_batch(by_slot: Mapping[Slot, Sequence[Message]], keys: KeyStore | None) -> dict[Slot, list[Message]]:
    """A batch read from several partitions, opened partition by partition once every forget in
    any of them is known: the live runner's batch. A subject forgotten in one partition is not
    opened in another partition's events of the same batch, whichever is opened first."""
    learn_forgets((m for messages in by_slot.values() for m in messages), keys)
    return {slot: await opened_after_learning(messages, keys) for slot, messages in by_slot.items()}


async def opened_after_learning(messages: Sequence[Message], keys: KeyStore | None) -> list[Message]:
    """`opened`, for messages whose forgets `learn_forgets` has already passed to `keys`."""
    shown = list(messages)
    if keys is None:
        return shown
    for i, message in enumerate(shown):
        # Checked without a coroutine: most events (balances, charges) hold nothing personal, and a
        # rebuild passes a million of them through here.
        if isinstance(message.value, EventEnvelope) and holds_personal_data(message.value):
            shown[i] = replace(message, value=await open_event(message.value, keys))
    return shown


# --- Erasing what read models stored before the forget --------------------------------------------


def erased_unless_null(column: Any) -> Any:
    """`[erased]` where the column holds a value; NULL stays NULL (an absent value says nothing)."""
    return case((column.is_(None), null()), else_=literal(ERASED))


def personal_event_fields() -> list[tuple[str, str, str]]:
    """(event type, field, subject rule) for every personal field of every event, from the marks."""
    return [
        (event_type, field, marker.subject)
        for kind in AGGREGATES.values()
        for event_type, model in kind.events.items()
        for field, marker in personal_fields(model).items()
    ]


def _path(*steps: str) -> Any:
    return literal(list(steps), ARRAY(Text))


def _erased_json() -> Any:
    return func.to_jsonb(literal(ERASED, Text))


async def erase_event_data(connection: AsyncConnection, table: Table, subject_id: str) -> None:
    """In a table that keeps events whole (`data` JSONB beside `type` and `aggregate_id`), set each
    of the subject's personal fields to `[erased]`: the fields the models mark, each found by its
    subject's rule (app.domain.personal: the aggregate's own id, or the event's `sender`)."""
    data = table.c.data
    for event_type, field, rule in personal_event_fields():
        held = data[SENDER_FIELD].astext == subject_id if rule == "sender" else table.c.aggregate_id == subject_id
        await connection.execute(
            update(table)
            .where(table.c.type == event_type, held, data[field].astext.is_not(None))
            .values(data=func.jsonb_set(data, _path(field), _erased_json()))
        )


async def erase_failures(connection: AsyncConnection, subject_ids: Sequence[str]) -> None:
    """Poison events are kept as the projector saw them, opened: erase the subject's fields there too
    (live tables only; a rebuild keeps no failures of its own)."""
    payload = cast(failures.c.payload, JSONB)
    for subject_id in subject_ids:
        for event_type, field, rule in personal_event_fields():
            owner = _path("data", SENDER_FIELD) if rule == "sender" else _path("aggregate_id")
            await connection.execute(
                update(failures)
                .where(
                    failures.c.topic == "events",
                    failures.c.event_type == event_type,
                    payload.op("#>>")(owner) == subject_id,
                    payload.op("#>>")(_path("data", field)).is_not(None),
                )
                .values(
                    payload=cast(func.jsonb_set(payload, _path("data", field), _erased_json()), Text),
                    # Its error may quote the value (a validation error does): the error's kind is kept.
                    error=func.split_part(failures.c.error, ":", 1) + literal(": " + ERASED),
                )
            )
