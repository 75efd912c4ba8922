"""event_log.principal: who caused each event (the audit trail)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Events written before the audit trail carry no principal: '' (a rebuild keeps it so).
    op.add_column("event_log", sa.Column("principal", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("event_log", "principal")
