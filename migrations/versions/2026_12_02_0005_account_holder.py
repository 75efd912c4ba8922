"""accounts.holder: the end user who holds an account (a token's subject)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Accounts opened before end users existed were opened by services: no holder.
    op.add_column("accounts", sa.Column("holder", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("accounts", "holder")
