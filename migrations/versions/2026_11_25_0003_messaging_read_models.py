"""messaging read models: accounts as messaging sees them, conversations, messages, inbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "messaging_accounts",
        sa.Column("account_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("currency", sa.Text(), nullable=False),
    )
    op.create_table(
        "conversations",
        sa.Column("conversation_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("title", sa.Text()),
        sa.Column("participants", ARRAY(sa.Text()), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
    )
    op.create_table(
        "messages",
        sa.Column("message_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("conversation_id", UUID(as_uuid=False), nullable=False),
        sa.Column("sender", UUID(as_uuid=False), nullable=False),
        sa.Column("recipients", ARRAY(sa.Text()), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("submitted_at", TIME, nullable=False),
        sa.Column("delivered_at", TIME),
    )
    op.create_index("messages_conversation_delivered", "messages", ["conversation_id", "delivered_at", "message_id"])
    op.create_table(
        "inbox",
        sa.Column("account_id", UUID(as_uuid=False), nullable=False),
        sa.Column("message_id", UUID(as_uuid=False), nullable=False),
        sa.Column("conversation_id", UUID(as_uuid=False), nullable=False),
        sa.Column("sender", UUID(as_uuid=False), nullable=False),
        sa.Column("delivered_at", TIME, nullable=False),
        sa.Column("read_at", TIME),
        sa.PrimaryKeyConstraint("account_id", "message_id"),
    )
    op.create_index("inbox_account_delivered", "inbox", ["account_id", "delivered_at", "message_id"])


def downgrade() -> None:
    for table in ("inbox", "messages", "conversations", "messaging_accounts"):
        op.drop_table(table)
