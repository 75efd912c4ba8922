"""Read model `accounts`: one row per account with its balance and version.

Events carry `balance_after`, so a batch is folded in memory to the last state
of each account and written with two bulk statements. The `version <` guard
makes a replayed event (a retried failure) a no-op instead of a regression.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.base import Message, Projection, occurred_at
from projections.tables import accounts

BALANCE_EVENTS = frozenset({"FundsDeposited", "FundsWithdrawn", "AccountCharged", "ChargeRefunded"})


async def apply(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    opened: dict[str, dict[str, Any]] = {}
    changed: dict[str, dict[str, Any]] = {}
    for message in messages:
        event = message.event
        at = occurred_at(event)
        if event.type == "AccountOpened":
            opened[event.aggregate_id] = {
                "account_id": event.aggregate_id,
                "owner": event.data["owner"],
                "currency": event.data["currency"],
                "holder": event.data.get("holder"),
                "balance": 0,
                "version": event.version,
                "created_at": at,
                "updated_at": at,
            }
        elif event.type in BALANCE_EVENTS:
            state = {"balance": event.data["balance_after"], "version": event.version, "updated_at": at}
            if event.aggregate_id in opened:
                opened[event.aggregate_id].update(state)
            else:
                changed[event.aggregate_id] = {"b_id": event.aggregate_id, **{f"b_{k}": v for k, v in state.items()}}
    if opened:
        await connection.execute(insert(accounts).on_conflict_do_nothing(), list(opened.values()))
    if changed:
        await connection.execute(UPDATE_BALANCE, list(changed.values()))


UPDATE_BALANCE = (
    update(accounts)
    .where(accounts.c.account_id == bindparam("b_id"), accounts.c.version < bindparam("b_version"))
    .values(balance=bindparam("b_balance"), version=bindparam("b_version"), updated_at=bindparam("b_updated_at"))
)

PROJECTION = Projection(name="accounts", tables=(accounts,), apply=apply)
