"""Read models show personal fields opened, or `[erased]` for a forgotten subject.

Events hold personal fields sealed (app/privacy, docs/privacy.md). Whatever reads
them for a read model (the live runner, a rebuild's replay and its catch-up)
opens each batch's events here once, before any projection sees them, so no
projection handles a sealed value or a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from app.eventstore.envelope import EventEnvelope
from app.privacy.key_store import KeyStore
from app.privacy.personal_data import open_event
from projections.base import Message


async def opened(messages: Sequence[Message], keys: KeyStore | None) -> list[Message]:
    """The messages with their events' personal fields opened (unchanged when sealing is off)."""
    if keys is None:
        return list(messages)
    return [
        replace(m, value=await open_event(m.value, keys)) if isinstance(m.value, EventEnvelope) else m for m in messages
    ]
