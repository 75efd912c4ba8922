"""Read model `account_ledger`: one row per money movement of an account, by version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.accounts import NAME, AccountCharged, ChargeRefunded, FundsDeposited, FundsWithdrawn
from app.domain.personal import personal_fields
from projections.base import Message, Projection, copy_rows, insert_rows, occurred_at
from projections.personal import erased_unless_null, forgotten_of
from projections.tables import ledger

# The events that move money, and what the ledger calls each movement.
Movement = FundsDeposited | FundsWithdrawn | AccountCharged | ChargeRefunded
KINDS: dict[type[Movement], str] = {
    FundsDeposited: "deposit",
    FundsWithdrawn: "withdrawal",
    AccountCharged: "charge",
    ChargeRefunded: "refund",
}
# The movements whose reference its account's holder wrote (deposits, withdrawals), not the saga's charges.
PERSONAL_REFERENCES = sorted(kind for event, kind in KINDS.items() if "reference" in personal_fields(event))


async def apply(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    rows = [dict(zip(COLUMNS, values, strict=True)) for values in movements(messages)]
    if rows:
        # A replayed event is already there: its (account, version) row is kept as it is.
        await insert_rows(connection, ledger, rows)
    await erase_forgotten(connection, messages)


async def bulk_apply(connection: AsyncConnection, schema: str, messages: Sequence[Message]) -> None:
    """A rebuild's replay: COPY into the fresh table."""
    await copy_rows(connection, schema, ledger, movements(messages))
    await erase_forgotten(connection, messages)  # a forget read while the replay ran


async def erase_forgotten(connection: AsyncConnection, messages: Sequence[Message]) -> None:
    for account_id in forgotten_of(messages, NAME):
        await connection.execute(
            update(ledger)
            .where(ledger.c.account_id == account_id, ledger.c.kind.in_(PERSONAL_REFERENCES))
            .values(reference=erased_unless_null(ledger.c.reference))
        )


COLUMNS = tuple(column.name for column in ledger.columns)
assert COLUMNS == ("account_id", "version", "kind", "amount", "balance_after", "reference", "occurred_at"), (
    "movements must follow the table's columns"
)


def movements(messages: Sequence[Message]) -> list[tuple[Any, ...]]:
    """A row per money movement among the messages, in the table's column order (a rebuild COPYs them)."""
    rows = []
    for m in messages:
        moved = m.fact
        if isinstance(moved, Movement):
            event = m.event
            rows.append(
                (
                    event.aggregate_id,
                    event.version,
                    KINDS[type(moved)],
                    moved.amount,
                    moved.balance_after,
                    moved.reference,
                    occurred_at(event),
                )
            )
    return rows


PROJECTION = Projection(name="ledger", tables=(ledger,), apply=apply, insert_only=True, bulk_apply=bulk_apply)
