"""Every read model, by name: what the projector runs and what a rebuild can rebuild."""

from __future__ import annotations

from collections.abc import Mapping

from projections import (
    accounts,
    command_status,
    conversations,
    event_log,
    ledger,
    messages,
    messaging_accounts,
)
from projections.base import Projection

PROJECTIONS: Mapping[str, Projection] = {
    p.name: p
    for p in (
        # Payments
        accounts.PROJECTION,
        ledger.PROJECTION,
        # Messaging
        messaging_accounts.PROJECTION,
        conversations.PROJECTION,
        messages.PROJECTION,
        # Both
        event_log.PROJECTION,
        command_status.PROJECTION,
    )
}
