"""command_status.principal: who sent the command (the audit trail's principal)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Known once the command itself is read; rows from before stay unknown until a rebuild.
    op.add_column("command_status", sa.Column("principal", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("command_status", "principal")
