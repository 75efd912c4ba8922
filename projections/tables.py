"""Every read-model table, in one MetaData that Alembic compares against.

Read-model tables have no schema of their own (they live in `public`); a
rebuild creates copies in the `eventline_rebuild` schema and runs the same
projection code against them through SQLAlchemy's `schema_translate_map`.
The bookkeeping tables name `public` explicitly, so a rebuild never moves them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = MetaData()

BOOKKEEPING = "public"

# ---------------------------------------------------------------- bookkeeping

# Where each projection stands in each partition of its topic. Written in the
# same transaction as the projection's rows, so the two never disagree.
checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("projection", Text, primary_key=True),
    Column("topic", Text, primary_key=True),  # without the namespace: "events", "commands", …
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=BOOKKEEPING,
)

# Events a projection could not apply after its retries.
failures = Table(
    "projection_failures",
    metadata,
    Column("failure_id", BigInteger, primary_key=True, autoincrement=True),
    Column("projection", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("event_id", Text),
    Column("event_type", Text),
    # The message as JSON text: JSONB would refuse some payloads (a NUL character), and a
    # failure must be recordable whatever the event holds.
    Column("payload", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("status", Text, nullable=False, server_default="open"),  # open | resolved
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True)),
    schema=BOOKKEEPING,
)

# One row per projection: running or halted (and why), and the last rebuild.
projection_status = Table(
    "projection_status",
    metadata,
    Column("projection", Text, primary_key=True),
    Column("state", Text, nullable=False, server_default="running"),  # running | halted
    Column("halted_reason", Text),
    Column("rebuild", JSONB),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=BOOKKEEPING,
)

# ---------------------------------------------------------------- read models

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", UUID(as_uuid=False), primary_key=True),
    Column("owner", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("holder", Text),  # the end user who holds it (a token's subject); none for a service's account
)

ledger = Table(
    "account_ledger",
    metadata,
    Column("account_id", UUID(as_uuid=False), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("reference", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("account_id", "version"),
)

event_log = Table(
    "event_log",
    metadata,
    Column("event_id", UUID(as_uuid=False), primary_key=True),
    Column("aggregate_type", Text, nullable=False),
    Column("aggregate_id", UUID(as_uuid=False), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("command_id", Text, nullable=False),
    Column("correlation_id", Text, nullable=False),
    Column("causation_id", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("principal", Text, nullable=False, server_default=""),  # who caused it: the audit trail
    Index("event_log_aggregate_version", "aggregate_id", "version", unique=True),
    Index("event_log_type_position", "type", "partition", "offset"),
    Index("event_log_position", "partition", "offset"),
)

command_status = Table(
    "command_status",
    metadata,
    Column("command_id", Text, primary_key=True),
    Column("command_type", Text),
    Column("aggregate_id", Text, nullable=False),
    Column("status", Text, nullable=False),  # accepted | succeeded | rejected
    Column("version", Integer),
    Column("position", Text),
    Column("problem", JSONB),
    Column("accepted_at", DateTime(timezone=True)),
    Column("decided_at", DateTime(timezone=True)),
    # Who sent it (`user:<subject>`, a key's name, `saga`): an end user reads the commands they sent.
    Column("principal", Text),
)

# ---------------------------------------------------------------- messaging read models

# The Messaging service's own copy of what it needs to know about accounts
# (event-carried state transfer): it never asks Payments.
messaging_accounts = Table(
    "messaging_accounts",
    metadata,
    Column("account_id", UUID(as_uuid=False), primary_key=True),
    Column("currency", Text, nullable=False),
    Column("holder", Text),  # the end user who holds it; none for a service's account
)

conversations = Table(
    "conversations",
    metadata,
    Column("conversation_id", UUID(as_uuid=False), primary_key=True),
    Column("title", Text),
    Column("participants", ARRAY(Text), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("message_id", UUID(as_uuid=False), primary_key=True),
    Column("conversation_id", UUID(as_uuid=False), nullable=False),
    Column("sender", UUID(as_uuid=False), nullable=False),
    Column("recipients", ARRAY(Text), nullable=False),
    Column("body", Text, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending_payment | delivered | rejected
    Column("reason", Text),
    Column("version", Integer, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Index("messages_conversation_delivered", "conversation_id", "delivered_at", "message_id"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("account_id", UUID(as_uuid=False), nullable=False),
    Column("message_id", UUID(as_uuid=False), nullable=False),
    Column("conversation_id", UUID(as_uuid=False), nullable=False),
    Column("sender", UUID(as_uuid=False), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=False),
    Column("read_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("account_id", "message_id"),
    Index("inbox_account_delivered", "account_id", "delivered_at", "message_id"),
)
