"""Base classes for commands (intentions) and events (facts)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Command(BaseModel):
    """A request to change an aggregate; validated strictly at the boundary."""

    # Frozen: a command is a value. extra="forbid": a misspelt field is a client bug.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(BaseModel):
    """Something that happened; concrete events add a ``type`` discriminator."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Bumped when a payload changes shape so upcasters know what they are reading.
    schema_version: ClassVar[int] = 1
