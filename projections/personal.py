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
from app.privacy.personal_data import holds_personal_data, open_event
from projections.base import Message


async def opened(messages: Sequence[Message], keys: KeyStore | None) -> list[Message]:
    """The messages with their events' personal fields opened (unchanged when sealing is off)."""
    shown = list(messages)
    if keys is None:
        return shown
    for i, message in enumerate(shown):
        # Checked without a coroutine: most events (balances, charges) hold nothing personal, and a
        # rebuild passes a million of them through here.
        if isinstance(message.value, EventEnvelope) and holds_personal_data(message.value):
            shown[i] = replace(message, value=await open_event(message.value, keys))
    return shown
