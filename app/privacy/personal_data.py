"""Seal and open the personal fields of one command's or event's data, each under its own subject's keys.

The write path calls these with the model of the command or event (its fields'
`Personal` marks say what to seal and whose it is) and the data as it travels
(a JSON dict). Keys come from a `SubjectKeys` (the key store, or any mapping in
tests): sealing takes the subject's key, opening tries each of the subject's
keys (a subject may have several: app.privacy.key_store).

Opening distinguishes a subject that is forgotten (every personal value shows
as `ERASED`) from one whose key this process has not read yet (`KeyNotKnownYet`:
the caller reads the key store up to its end and tries again; a key is always
stored before anything is sealed with it).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any, Protocol

from pydantic import BaseModel

from app.domain.personal import personal_fields, subject_id_of
from app.domain.registry import AGGREGATES
from app.eventstore.envelope import CommandEnvelope, EventEnvelope
from app.privacy.key_store import KeyStore
from app.privacy.sealing import ERASED, SealBroken, is_sealed, open_sealed, seal


class SubjectKeys(Protocol):
    def keys_of(self, subject_id: str) -> list[bytes]: ...

    def is_forgotten(self, subject_id: str) -> bool: ...


class KeyNotKnownYet(LookupError):
    """A value is sealed for a subject whose key this process has not read yet."""

    def __init__(self, subject_id: str) -> None:
        super().__init__(f"no data key of subject {subject_id} has been read yet")
        self.subject_id = subject_id


def fields_by_subject(model: type[BaseModel], data: Mapping[str, Any], aggregate_id: str) -> dict[str, list[str]]:
    """Subject id → the personal fields of `data` that are theirs (fields absent or None left out)."""
    found: defaultdict[str, list[str]] = defaultdict(list)
    for field, marker in personal_fields(model).items():
        if data.get(field) is not None:
            found[subject_id_of(marker, aggregate_id=aggregate_id, payload=data)].append(field)
    return dict(found)


async def seal_data(
    model: type[BaseModel],
    data: Mapping[str, Any],
    *,
    aggregate_id: str,
    sealing_key: Callable[[str], Awaitable[bytes]],
) -> dict[str, Any]:
    """A copy of `data` with every personal field sealed under its subject's key (`sealing_key`
    creates one on first need, and refuses a forgotten subject)."""
    sealed = dict(data)
    for subject_id, fields in fields_by_subject(model, data, aggregate_id).items():
        key = await sealing_key(subject_id)
        for field in fields:
            if not is_sealed(sealed[field]):
                sealed[field] = seal(str(sealed[field]), subject_id=subject_id, field=field, key=key)
    return sealed


def open_data(
    model: type[BaseModel],
    data: Mapping[str, Any],
    *,
    aggregate_id: str,
    keys: SubjectKeys,
    subjects: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """A copy of `data` with every personal field opened, or `ERASED` when its subject is forgotten.

    A plain value (written before sealing existed) is kept, unless its subject is forgotten.
    Raises `KeyNotKnownYet` for a sealed value whose subject has no key here yet, and
    `SealBroken` for one that none of the subject's keys opens.
    """
    opened = dict(data)
    if subjects is None:
        subjects = fields_by_subject(model, data, aggregate_id)
    for subject_id, fields in subjects.items():
        if keys.is_forgotten(subject_id):
            opened.update((field, ERASED) for field in fields)
            continue
        subject_keys = keys.keys_of(subject_id)
        for field in fields:
            value = data[field]
            if not is_sealed(value):
                continue
            if not subject_keys:
                raise KeyNotKnownYet(subject_id)
            opened[field] = open_with_any(value, subject_id=subject_id, field=field, keys=subject_keys)
    return opened


def open_with_any(token: str, *, subject_id: str, field: str, keys: list[bytes]) -> str:
    for key in keys:
        try:
            return open_sealed(token, subject_id=subject_id, field=field, key=key)
        except SealBroken:
            continue
    raise SealBroken(f"none of the {len(keys)} data keys of the subject opens {field!r}")


# --- Commands and events as they travel ----------------------------------------------------------------


class PersonalDataRefused(Exception):
    """A command whose personal data cannot be taken: its subject is forgotten, or it cannot be opened."""

    def __init__(self, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.title, self.detail = code, title, detail


def command_model(command: CommandEnvelope) -> type[BaseModel] | None:
    kind = AGGREGATES.get(command.aggregate_type)
    return None if kind is None else kind.commands.get(command.type)


def event_model(event: EventEnvelope) -> type[BaseModel] | None:
    kind = AGGREGATES.get(event.aggregate_type)
    return None if kind is None else kind.events.get(event.type)


async def seal_command(command: CommandEnvelope, keys: KeyStore) -> CommandEnvelope:
    """The command as it may be stored: its personal fields sealed (at the edge, before any topic).

    Raises SubjectForgotten for a subject who asked to be forgotten."""
    model = command_model(command)
    if model is None or not personal_fields(model):
        return command
    return replace(
        command,
        data=await seal_data(model, command.data, aggregate_id=command.aggregate_id, sealing_key=keys.sealing_key),
    )


class WriterKeys:
    """The processor's use of the key store: keys ready before a batch is decided, then sync calls."""

    def __init__(self, keys: KeyStore, started: Awaitable[None] | None = None) -> None:
        """`started`: the key store's start, when it runs beside the processor's own (no batch is
        decided before it finished, and its failure is the batch's)."""
        self.keys = keys
        self.started = started

    async def prepare(self, commands: Iterable[CommandEnvelope]) -> None:
        """Have every key a batch needs: read one another process created, create one for a plain
        value (a command stored before sealing was turned on)."""
        if self.started is not None:
            await self.started
        catch_up = False
        missing: set[str] = set()
        for command in commands:
            model = command_model(command)
            if model is None:
                continue
            for subject_id, fields in fields_by_subject(model, command.data, command.aggregate_id).items():
                if self.keys.is_forgotten(subject_id) or self.keys.keys_of(subject_id):
                    continue
                if any(is_sealed(command.data[field]) for field in fields):
                    catch_up = True
                else:
                    missing.add(subject_id)
        # Created side by side: each is a round trip (acks=all) before the batch can be decided.
        await asyncio.gather(*(self.keys.sealing_key(subject_id) for subject_id in sorted(missing)))
        if catch_up:
            await self.keys.caught_up()

    def open_command(self, model: type[BaseModel], command: CommandEnvelope) -> dict[str, Any]:
        """The command's data with its personal fields opened, for the domain to decide on."""
        subjects = fields_by_subject(model, command.data, command.aggregate_id)
        if forgotten := sorted(s for s in subjects if self.keys.is_forgotten(s)):
            raise PersonalDataRefused(
                "subject-forgotten", "Subject forgotten", f"subject {forgotten[0]} asked to be forgotten"
            )
        try:
            return open_data(model, command.data, aggregate_id=command.aggregate_id, keys=self.keys, subjects=subjects)
        except (KeyNotKnownYet, SealBroken) as error:
            raise PersonalDataRefused(
                "personal-data-unreadable", "Personal data unreadable", f"a personal field cannot be opened: {error}"
            ) from None

    def seal_event(self, model: type[BaseModel], data: dict[str, Any], aggregate_id: str) -> dict[str, Any]:
        """The event's data with its personal fields sealed under the keys `prepare` made ready."""
        sealed = dict(data)
        for subject_id, fields in fields_by_subject(model, data, aggregate_id).items():
            subject_keys = self.keys.keys_of(subject_id)
            if not subject_keys:
                raise PersonalDataRefused(
                    "subject-forgotten", "Subject forgotten", f"subject {subject_id} has no data key to seal with"
                )
            for field in fields:
                if not is_sealed(sealed[field]):
                    sealed[field] = seal(str(sealed[field]), subject_id=subject_id, field=field, key=subject_keys[0])
        return sealed


def holds_personal_data(event: EventEnvelope) -> bool:
    """Whether the event has a personal field with a value: the rest need no opening (most events).

    Asked of every event a projector reads (a rebuild: a million), so it is a lookup and a loop."""
    data = event.data
    for field in personal_field_names(event.aggregate_type, event.type):
        if data.get(field) is not None:
            return True
    return False


@lru_cache(maxsize=1024)  # bounded: the types come from the log, where a foreign producer may write anything
def personal_field_names(aggregate_type: str, event_type: str) -> tuple[str, ...]:
    kind = AGGREGATES.get(aggregate_type)
    model = None if kind is None else kind.events.get(event_type)
    return () if model is None else tuple(personal_fields(model))


async def open_event(event: EventEnvelope, keys: KeyStore) -> EventEnvelope:
    """The event as a reader shows it: personal fields opened, or ERASED for a forgotten subject."""
    model = event_model(event)
    if model is None or not personal_fields(model):
        return event
    try:
        opened = open_data(model, event.data, aggregate_id=event.aggregate_id, keys=keys)
    except KeyNotKnownYet:
        await keys.caught_up()  # a key is stored before anything is sealed with it: it is on its way
        opened = open_data(model, event.data, aggregate_id=event.aggregate_id, keys=keys)
    return replace(event, data=opened)
