"""What must hold after any fault: checked over every event, every read model and a fresh rebuild."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from app.config import Settings
from app.db import create_engine
from app.eventstore.bad_records import UNREADABLE
from app.eventstore.envelope import CommandResult, EventEnvelope
from app.eventstore.kafka import connection
from app.sagas.payment import message_of
from projections.rebuild import rebuild_together
from projections.registry import PROJECTIONS
from projections.tables import accounts, command_status, messages
from tests.faults.load import Operation
from tests.support import assert_versions_gapless, read_events, read_topic

SIGNED = {"FundsDeposited": 1, "FundsWithdrawn": -1, "AccountCharged": -1, "ChargeRefunded": 1}


@dataclass
class Verdict:
    events: int
    acknowledged: int
    lost: int
    duplicated: int
    checks: int
    operations: int = 0
    succeeded: int = 0
    refused: int = 0
    ambiguous: int = 0


# The one event each kind of operation writes when it succeeds.
EFFECT = {
    "open": "AccountOpened",
    "deposit": "FundsDeposited",
    "withdraw": "FundsWithdrawn",
    "message": "MessageSubmitted",
    "start": "ConversationStarted",
}


def check_operations(operations: list[Operation], events: list[EventEnvelope]) -> dict[str, int]:
    """Per key, against the log: at most one effect; exactly one when it was answered with success."""
    effects: dict[str, list[EventEnvelope]] = {}
    for event in events:
        effects.setdefault(event.command_id, []).append(event)
    wrong = []
    for op in operations:
        found = effects.get(op.command_id, [])
        expected = 1 if op.succeeded else 0 if op.refused else None  # None: never decided, 0 or 1
        if len(found) > 1 or (expected is not None and len(found) != expected):
            wrong.append(f"{op.kind} {op.key} answered {op.statuses}: {len(found)} events")
        elif found and (
            found[0].type != EFFECT[op.kind]
            or found[0].data.get("amount", op.body.get("amount")) != op.body.get("amount")
        ):
            wrong.append(f"{op.kind} {op.key}: wrote {found[0].type} {found[0].data}")
    assert not wrong, f"{len(wrong)} operations without exactly their effect: " + "; ".join(wrong[:10])
    return {
        "operations": len(operations),
        "succeeded": sum(op.succeeded for op in operations),
        "refused": sum(op.refused for op in operations),
        "ambiguous": sum(not op.decided for op in operations),
    }


def check_messages_settled(events: list[EventEnvelope]) -> None:
    """Every submitted message ends delivered or rejected, once; no reference is charged twice."""
    endings = Counter(e.aggregate_id for e in events if e.type in ("MessageDelivered", "MessageRejected"))
    submitted = [e.aggregate_id for e in events if e.type == "MessageSubmitted"]
    unsettled = [m for m in submitted if endings[m] != 1]
    assert not unsettled, f"{len(unsettled)} messages not settled exactly once, e.g. {unsettled[:5]}"
    charged = Counter(e.data["reference"] for e in events if e.type == "AccountCharged")
    assert not [r for r, n in charged.items() if n > 1], "a reference was charged twice"


async def settle(ns: Settings, acknowledged: set[str], timeout: float = 120) -> None:
    """Until every acknowledged command has a result and every consumer has caught up."""
    deadline = time.monotonic() + timeout
    while True:
        decided = {result.command_id for r in await read_topic(ns, "command-results") if (result := decoded(r.value))}
        behind = await lag(ns, ns.processor_group, "commands", transactional=False) + await lag(
            ns, ns.saga_group, "events", transactional=True
        )
        if acknowledged <= decided and behind == 0 and await projections_caught_up(ns):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled: {len(acknowledged - decided)} undecided, {behind} behind")
        await asyncio.sleep(0.5)


def decoded(raw: bytes | None) -> CommandResult | None:
    try:
        return CommandResult.decode(raw or b"")
    except UNREADABLE:  # the junk round's records
        return None


async def lag(ns: Settings, group: str, topic: str, transactional: bool) -> int:
    """Records the group has not committed past.

    A transactional topic ends with a commit marker the group never needs to consume, so
    one record per partition does not count there; the commands topic has no markers.
    """
    consumer = AIOKafkaConsumer(
        **connection(ns), group_id=group, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(ns.topic(topic), p) for p in range(ns.partitions)]
        ends = await consumer.end_offsets(tps)
        committed = [await consumer.committed(tp) or 0 for tp in tps]
        markers = 1 if transactional else 0
        return sum(max(0, ends[tp] - c - markers) for tp, c in zip(tps, committed, strict=True))
    finally:
        await consumer.stop()


async def projections_caught_up(ns: Settings) -> bool:
    from projections.status import projection_status

    engine = create_engine(ns)
    consumer = AIOKafkaConsumer(**connection(ns), isolation_level="read_committed")
    await consumer.start()
    try:
        views = await projection_status(ns, engine, consumer)
        return all(view["lag"] == 0 for view in views)
    finally:
        await consumer.stop()
        await engine.dispose()


async def check_invariants(ns: Settings, acknowledged: set[str], operations: list[Operation] | None = None) -> Verdict:
    events = await read_events(ns)
    per_operation = check_operations(operations, events) if operations is not None else {}
    check_messages_settled(events)
    per_command = Counter(e.command_id for e in events)
    doubles = [e for e in events if _is_single(e) and per_command[e.command_id] > 1]
    duplicated = len(doubles)
    assert duplicated == 0, "commands applied twice: " + "; ".join(
        f"{e.type} v{e.version} of {e.aggregate_id} by command {e.command_id} at {e.occurred_at}" for e in doubles
    )
    assert_versions_gapless(events)
    engine = create_engine(ns)
    try:
        async with engine.connect() as connection:
            undecided = (
                await connection.execute(
                    select(func.count())
                    .select_from(command_status)
                    .where(command_status.c.command_id.in_(acknowledged), command_status.c.status == "accepted")
                )
            ).scalar_one()
            decided = (
                await connection.execute(
                    select(func.count())
                    .select_from(command_status)
                    .where(command_status.c.command_id.in_(acknowledged), command_status.c.status != "accepted")
                )
            ).scalar_one()
            total_balance = await connection.execute(select(func.coalesce(func.sum(accounts.c.balance), 0)))
            delivered = (
                await connection.execute(
                    select(func.count(), func.coalesce(func.sum(messages.c.price), 0)).where(
                        messages.c.status == "delivered"
                    )
                )
            ).one()
            pending = (
                await connection.execute(
                    select(func.count()).select_from(messages).where(messages.c.status == "pending_payment")
                )
            ).scalar_one()
        assert pending == 0, f"{pending} messages left in pending_payment"
        lost = len(acknowledged) - decided
        assert undecided == 0 and lost == 0, f"{lost} acknowledged commands were never decided"
        money = sum(SIGNED.get(e.type, 0) * e.data.get("amount", 0) for e in events)
        assert total_balance.scalar_one() == money, "balances differ from the events"
        charges = [e for e in events if e.type == "AccountCharged" and message_of(e.data.get("reference"))]
        assert (delivered[0], delivered[1]) == (len(charges), sum(c.data["amount"] for c in charges))
        # Results expire after an hour by design (command_status); everything else must rebuild identically,
        # replayed as `eventline rebuild --all` does it: partitions shared between two processes.
        rebuilt = [p for name, p in PROJECTIONS.items() if name != "command_status"]
        for report in await rebuild_together(ns, engine, rebuilt, verify=True, workers=2):
            assert report.swapped and not report.differs, report
    finally:
        await engine.dispose()
    return Verdict(len(events), len(acknowledged), lost, duplicated, checks=8 + len(PROJECTIONS) - 1, **per_operation)


def _is_single(event: EventEnvelope) -> bool:
    """Commands of these kinds write exactly one event; a second one would be a double apply."""
    return event.type in {
        "FundsDeposited",
        "FundsWithdrawn",
        "AccountOpened",
        "MessageSubmitted",
        "AccountCharged",
        "ChargeDeclined",
        "MessageDelivered",
        "MessageRejected",
    }
