"""Which fields of a command or event hold personal data, and whose.

A field is marked where it is declared, so the rule lives next to the data:

    class AccountOpened(Event):
        owner: Annotated[str, Personal(subject="account")]
        holder: Annotated[str | None, Personal(subject="account")] = None

The write path seals a marked field under its data subject's key before the
event is stored (app.privacy.sealing) and forgetting a subject deletes that key:
every copy of the field, in every event and every replica of the log, becomes
unreadable at once (crypto-shredding). Nothing here does any of that; this
module only says which fields and whose.

The subject is a small closed vocabulary, because each word is a rule for
finding the subject's id, and the write path must implement every rule:

- ``"account"``: the owner of the account whose command or event this is; the
  subject's id is the Account aggregate's id (``aggregate_id`` of its stream).
- ``"sender"``: the account that sent a message; the subject's id is the value
  of the model's own ``sender`` field. That field must stay readable (it names
  the key), so it can never be personal itself.
- ``"conversation"``: the conversation itself, for data that belongs to all of
  its participants together (a title); the subject's id is the Conversation
  aggregate's id.

``subject_id_of`` applies these rules. ``personal_fields`` lists a model's
marked fields (cached per class); keys are field names, which are what
``model_dump()`` and the stored JSON use. Only the field's own annotation is
looked at, in either optional spelling (``Annotated[str | None, Personal(...)]``,
preferred, or ``Annotated[str, Personal(...)] | None``), never inside lists or
nested models: sealing works on text values.

The marker also shows in the JSON schema (``"x-personal": true`` and
``"x-subject"``), so the AsyncAPI/OpenAPI documents say which fields are
personal without a second list to keep in step.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Final, Literal, Union, assert_never, get_args, get_origin

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

Subject = Literal["account", "sender", "conversation"]
SUBJECTS: Final[tuple[Subject, ...]] = get_args(Subject)

# The field whose value is the subject id of every "sender" field.
SENDER_FIELD: Final = "sender"


@dataclass(frozen=True, slots=True)
class Personal:
    """Marks a field as personal data of ``subject``; meant for ``typing.Annotated``."""

    subject: Subject

    def __post_init__(self) -> None:
        # The Literal is only checked by mypy; a word outside it would have no rule to find its id.
        if self.subject not in SUBJECTS:
            raise ValueError(f"unknown data subject {self.subject!r}; expected one of {', '.join(SUBJECTS)}")

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # Added to the field's schema (not a $ref'd definition), so only this field is marked.
        return {**handler(core_schema), "x-personal": True, "x-subject": self.subject}


def personal_fields(model: type[BaseModel]) -> Mapping[str, Personal]:
    """Field name -> marker for each personal field of ``model``, in declaration order.

    Raises TypeError when the model breaks a rule of the vocabulary (a "sender"
    field without a readable ``sender`` field), so a bad model fails on first use.
    """
    # Cached per class and read-only: the write path asks for every command and event it handles.
    return _personal_fields(model)


@functools.cache
def _personal_fields(model: type[BaseModel]) -> Mapping[str, Personal]:
    found = {
        name: marker
        for name, info in model.model_fields.items()
        if (marker := _marker([*info.metadata, *_nested_metadata(info.annotation)])) is not None
    }
    _check_sender(model, found)
    return MappingProxyType(found)


def _marker(metadata: list[object]) -> Personal | None:
    markers = {item for item in metadata if isinstance(item, Personal)}
    if len(markers) > 1:
        raise TypeError(f"a field names more than one data subject: {sorted(m.subject for m in markers)}")
    return markers.pop() if markers else None


def _nested_metadata(annotation: object) -> list[object]:
    # pydantic lifts only the outer Annotated into FieldInfo.metadata; `Annotated[str, Personal()] | None`
    # keeps the marker inside the union, so the union's members are looked at too.
    if get_origin(annotation) not in (Union, types.UnionType):
        return []
    return [item for member in get_args(annotation) if get_origin(member) is Annotated for item in member.__metadata__]


def _check_sender(model: type[BaseModel], found: Mapping[str, Personal]) -> None:
    if not any(marker.subject == "sender" for marker in found.values()):
        return
    if SENDER_FIELD not in model.model_fields:
        raise TypeError(f"{model.__name__} has a field of subject 'sender' but no {SENDER_FIELD!r} field")
    if SENDER_FIELD in found:
        raise TypeError(f"{model.__name__}.{SENDER_FIELD} names the key of its 'sender' fields, so it cannot be sealed")


def subject_id_of(marker: Personal, *, aggregate_id: str, payload: Mapping[str, object]) -> str:
    """The id of the data subject whose key seals a field (the rules in the module docstring)."""
    match marker.subject:
        case "account" | "conversation":
            return aggregate_id
        case "sender":
            sender = payload.get(SENDER_FIELD)
            if not isinstance(sender, str) or not sender:
                raise ValueError(f"a 'sender' field needs a non-empty {SENDER_FIELD!r} in the same payload")
            return sender
        case _:
            assert_never(marker.subject)
