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

from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from pydantic import BaseModel

from app.domain.personal import personal_fields, subject_id_of
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
    model: type[BaseModel], data: Mapping[str, Any], *, aggregate_id: str, keys: SubjectKeys
) -> dict[str, Any]:
    """A copy of `data` with every personal field opened, or `ERASED` when its subject is forgotten.

    A plain value (written before sealing existed) is kept, unless its subject is forgotten.
    Raises `KeyNotKnownYet` for a sealed value whose subject has no key here yet, and
    `SealBroken` for one that none of the subject's keys opens.
    """
    opened = dict(data)
    for subject_id, fields in fields_by_subject(model, data, aggregate_id).items():
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
