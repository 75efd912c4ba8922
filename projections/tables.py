"""Every read-model table, in one MetaData that Alembic compares against."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Table, Text, func

metadata = MetaData()

# Where each projection stands in each partition of `<ns>.events`. It is written
# in the same transaction as the projection's rows, so the two never disagree.
checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("projection", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
