"""Every aggregate kind the write side can host, by name.

The processor looks up an incoming command's `aggregate_type` here to find how
to decide, evolve and snapshot it; nothing else about the domain leaks into
the event store. A new aggregate is one more module with a `KIND`, listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain import accounts, conversations, messages
from app.domain.kind import AggregateKind

ACCOUNT, CONVERSATION, MESSAGE = accounts.KIND, conversations.KIND, messages.KIND

AGGREGATES: Mapping[str, AggregateKind[Any, Any, Any]] = {kind.name: kind for kind in (ACCOUNT, CONVERSATION, MESSAGE)}
