"""What a writer holds of one command partition: its aggregates, what it remembers, where it is.

A batch of commands is decided here without touching Kafka (`decide`); the
partition's memory moves forward only once the transaction that wrote the batch
committed (`advance`), so an aborted batch leaves nothing to undo.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from app.config import Settings
from app.eventstore.bad_records import UNREADABLE, skip_bad_record
from app.eventstore.decision import Aggregate, Decision, decide_command
from app.eventstore.envelope import CommandEnvelope, RememberedCommand, utc_now
from app.eventstore.idempotency import IdempotencyMemory, now_ms
from app.observability.logs import carrying
from app.privacy.personal_data import WriterKeys

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Batch:
    """What one batch of a partition decided, before it is written: nothing here is in memory yet."""

    partition: int
    next_offset: int  # the command offset after the batch's last record
    decisions: list[Decision] = field(default_factory=list)
    touched: dict[str, Aggregate] = field(default_factory=dict)
    remembered: dict[str, RememberedCommand] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)


class PartitionState:
    """One command partition's aggregates, remembered commands and offsets, as its owner holds them."""

    def __init__(
        self,
        settings: Settings,
        partition: int,
        aggregates: dict[str, Aggregate],
        next_offset: int,
        memory: IdempotencyMemory | None = None,
    ) -> None:
        self.partition = partition
        self.aggregates = aggregates
        self.memory = memory if memory is not None else IdempotencyMemory(settings.idempotency_retention_ms)
        self.next_offset = next_offset
        # Where this partition's next event will land; unknown until our first transaction's acks.
        self.next_event_offset: int | None = None
        self.source = TopicPartition(settings.topic("commands"), partition)
        # Batches committed since this owner took the partition over (the commit's metadata says it).
        self.batches = 0

    def decide(
        self,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        personal: WriterKeys | None = None,
        decoded: Mapping[tuple[int, int], CommandEnvelope | None] | None = None,
    ) -> Batch | None:
        """Run every command not applied yet against the aggregates, in order, without touching Kafka.

        `decoded`: the records' commands by (partition, offset), when the caller decoded them already."""
        fresh = [r for r in records if r.offset >= self.next_offset]
        if not fresh:
            return None
        batch = Batch(self.partition, fresh[-1].offset + 1, expired=self.memory.expire(now_ms()))
        now = utc_now()
        for record in fresh:
            command = decoded[(record.partition, record.offset)] if decoded is not None else decode_command(record)
            if command is None:
                continue
            current = batch.touched.get(command.aggregate_id) or self.aggregates.get(command.aggregate_id)
            # Looked up in this batch first, so a repeat later in the same batch is caught too.
            remembered = batch.remembered.get(command.command_id) or self.memory.get(command.command_id)
            with carrying(command.correlation_id, command.command_id):
                decision = decide_command(
                    current, command, now=now, new_event_id=new_event_id, remembered=remembered, personal=personal
                )
                log.debug("decided %s %s: %s", command.type, command.aggregate_id, decision.result.outcome)
            if decision.aggregate is not None:
                batch.touched[command.aggregate_id] = decision.aggregate
            if decision.to_remember:
                batch.remembered[command.command_id] = decision.remembered(decision.result)
            batch.decisions.append(decision)
        return batch

    def advance(self, batch: Batch, remembered_at: int, next_event_offset: int | None) -> None:
        """The batch's transaction committed: take on what it decided."""
        self.aggregates.update(batch.touched)
        for command_id, entry in batch.remembered.items():
            self.memory.remember(command_id, remembered_at, entry.encode())
        self.next_offset = batch.next_offset
        self.next_event_offset = next_event_offset
        self.batches += 1


def new_event_id() -> str:
    return str(uuid.uuid4())


def decode_command(record: ConsumerRecord[bytes, bytes]) -> CommandEnvelope | None:
    try:
        return CommandEnvelope.decode(record.value or b"")
    except UNREADABLE as error:
        # Not ours to decide: nobody can be answered without a command id. Skip it,
        # but loudly, and let the offset move on so one bad message cannot block p.
        skip_bad_record("processor", record, error)
        return None
