"""Read model `command_status`: what became of each command, for `GET /commands/{id}`.

It reads two topics: a command on `<ns>.commands` is `accepted`; its result on
`<ns>.command-results` makes it `succeeded` or `rejected`. The result always
wins, whichever of the two the projection happens to see first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.eventstore import position
from app.eventstore.envelope import CommandEnvelope, CommandResult
from projections.base import Message, Projection, upsert_rows
from projections.tables import command_status


async def apply(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    accepted: dict[str, dict[str, Any]] = {}
    decided: dict[str, dict[str, Any]] = {}
    for message in messages:
        if isinstance(message.value, CommandEnvelope):
            accepted[message.value.command_id] = _accepted(message.value)
        elif isinstance(message.value, CommandResult) and _is_outcome(message.value):
            decided[message.value.command_id] = _decided(message.value)
    # Keyed by command id above: no statement updates a row twice.
    await upsert_rows(connection, command_status, list(accepted.values()), KEY, FROM_THE_COMMAND)
    await upsert_rows(connection, command_status, list(decided.values()), KEY, FROM_THE_RESULT)


KEY = ("command_id",)
# The columns each record knows; the result's are never overwritten by its command's, whichever comes first.
FROM_THE_COMMAND = ("command_type", "accepted_at", "principal")
FROM_THE_RESULT = ("status", "version", "position", "problem", "decided_at")


def _is_outcome(result: CommandResult) -> bool:
    # A repeat answered from memory, or a refused reuse of its idempotency key, is not news.
    reused = result.error is not None and result.error.get("code") == "idempotency-key-reused"
    return not result.replayed and not reused


def _accepted(command: CommandEnvelope) -> dict[str, Any]:
    return {
        "command_id": command.command_id,
        "command_type": command.type,
        "aggregate_id": command.aggregate_id,
        "status": "accepted",
        "accepted_at": datetime.fromisoformat(command.issued_at),
        "principal": command.principal,
        "version": None,
        "position": None,
        "problem": None,
        "decided_at": None,
    }


def _decided(result: CommandResult) -> dict[str, Any]:
    return {
        "command_id": result.command_id,
        "command_type": None,
        "aggregate_id": result.aggregate_id,
        "status": result.outcome,
        "version": result.version,
        "position": position.encode(result.position) if result.position else None,
        "problem": result.error,
        "accepted_at": None,
        "principal": None,  # the command says who sent it, not its result
        "decided_at": datetime.fromisoformat(result.decided_at) if result.decided_at else None,
    }


PROJECTION = Projection(
    name="command_status",
    tables=(command_status,),
    apply=apply,
    topics={"commands": CommandEnvelope.decode, "command-results": CommandResult.decode},
    replay_note="it is rebuilt from <ns>.commands and <ns>.command-results, which keep records for a "
    "while only (EVENTLINE_COMMAND_RETENTION_MS, EVENTLINE_RESULT_RETENTION_MS: a week and an hour by "
    "default); commands older than that are in the live table alone, so a rebuild cannot restore them "
    "and --verify finds them missing. Rebuild it without --verify to start afresh.",
)
