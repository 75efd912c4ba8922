"""Read model `accounts`: one row per account with its balance and version.

Events carry `balance_after`, so a batch is folded in memory to the last state
of each account and written with two bulk statements. The `version <` guard
makes a replayed event (a retried failure) a no-op instead of a regression.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.accounts import NAME, AccountCharged, AccountOpened, ChargeRefunded, FundsDeposited, FundsWithdrawn
from app.domain.forgetting import SubjectForgotten
from projections.base import Message, Projection, occurred_at
from projections.personal import erased_unless_null
from projections.tables import accounts


async def apply(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    opened: dict[str, dict[str, Any]] = {}
    changed: dict[str, dict[str, Any]] = {}
    forgotten: list[dict[str, Any]] = []
    for message in messages:
        event = message.event
        match message.fact:
            case AccountOpened(owner=owner, currency=currency, holder=holder):
                at = occurred_at(event)
                opened[event.aggregate_id] = {
                    "account_id": event.aggregate_id,
                    "owner": owner,
                    "currency": currency,
                    "holder": holder,
                    "balance": 0,
                    "version": event.version,
                    "created_at": at,
                    "updated_at": at,
                }
            case (
                FundsDeposited(balance_after=balance)
                | FundsWithdrawn(balance_after=balance)
                | AccountCharged(balance_after=balance)
                | ChargeRefunded(balance_after=balance)
            ):
                state = {"balance": balance, "version": event.version, "updated_at": occurred_at(event)}
                if event.aggregate_id in opened:
                    opened[event.aggregate_id].update(state)
                else:
                    changed[event.aggregate_id] = {
                        "b_id": event.aggregate_id,
                        **{f"b_{k}": v for k, v in state.items()},
                    }
            case SubjectForgotten() if event.aggregate_type == NAME:
                forgotten.append({"b_id": event.aggregate_id, "b_version": event.version, "b_at": occurred_at(event)})
    if opened:
        await connection.execute(insert(accounts).on_conflict_do_nothing(), list(opened.values()))
    if changed:
        await connection.execute(UPDATE_BALANCE, list(changed.values()))
    if forgotten:
        await connection.execute(ERASE_OWNER, forgotten)


UPDATE_BALANCE = (
    update(accounts)
    .where(accounts.c.account_id == bindparam("b_id"), accounts.c.version < bindparam("b_version"))
    .values(balance=bindparam("b_balance"), version=bindparam("b_version"), updated_at=bindparam("b_updated_at"))
)

# After the balance: the erasure holds whatever else this batch did to the row.
ERASE_OWNER = (
    update(accounts)
    .where(accounts.c.account_id == bindparam("b_id"))
    .values(
        owner=erased_unless_null(accounts.c.owner),
        holder=erased_unless_null(accounts.c.holder),
        updated_at=func.greatest(accounts.c.updated_at, bindparam("b_at")),
        version=func.greatest(accounts.c.version, bindparam("b_version")),
    )
)

PROJECTION = Projection(name="accounts", tables=(accounts,), apply=apply)
