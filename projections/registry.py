"""Every read model, by name: what the projector runs and what a rebuild can rebuild."""

from __future__ import annotations

from collections.abc import Mapping

from projections import accounts, command_status, event_log, ledger
from projections.base import Projection

PROJECTIONS: Mapping[str, Projection] = {
    p.name: p for p in (accounts.PROJECTION, ledger.PROJECTION, event_log.PROJECTION, command_status.PROJECTION)
}
