"""read models: accounts, ledger, event log, command status; failures and projection status

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.func.now()


def upgrade() -> None:
    op.create_table(
        "projection_failures",
        sa.Column("failure_id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("projection", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text()),
        sa.Column("event_type", sa.Text()),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="open"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "projection_status",
        sa.Column("projection", sa.Text(), primary_key=True),
        sa.Column("state", sa.Text(), nullable=False, server_default="running"),
        sa.Column("halted_reason", sa.Text()),
        sa.Column("rebuild", JSONB()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "accounts",
        sa.Column("account_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "account_ledger",
        sa.Column("account_id", UUID(as_uuid=False), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.Text()),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "version"),
    )
    op.create_table(
        "event_log",
        sa.Column("event_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("aggregate_type", sa.Text(), nullable=False),
        sa.Column("aggregate_id", UUID(as_uuid=False), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("command_id", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.Text(), nullable=False),
        sa.Column("causation_id", sa.Text(), nullable=False),
        sa.Column("data", JSONB(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
    )
    op.create_index("event_log_aggregate_version", "event_log", ["aggregate_id", "version"], unique=True)
    op.create_index("event_log_type_position", "event_log", ["type", "partition", "offset"])
    op.create_index("event_log_position", "event_log", ["partition", "offset"])
    op.create_table(
        "command_status",
        sa.Column("command_id", sa.Text(), primary_key=True),
        sa.Column("command_type", sa.Text()),
        sa.Column("aggregate_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer()),
        sa.Column("position", sa.Text()),
        sa.Column("problem", JSONB()),
        sa.Column("accepted_at", sa.DateTime(timezone=True)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    for table in (
        "command_status",
        "event_log",
        "account_ledger",
        "accounts",
        "projection_status",
        "projection_failures",
    ):
        op.drop_table(table)
