"""The payment saga: a message is delivered only after its sender was charged for it.

    MessageSubmitted  → Charge the sender's account (reference = message id)
    AccountCharged    → DeliverMessage
    ChargeDeclined    → RejectMessage, with the decline's reason

Payments and Messaging know each other only through these events. The saga is
its own consumer group on `<ns>.events`; it commits its offsets only once
Kafka has acknowledged the commands an event caused. Every command's id is
derived from the id of the event that caused it, so an event read twice (a
crash before the commit, a group reset to offset 0) produces the same command
ids, which the processor answers from memory; past that memory the domain
refuses a second charge of the same reference and a second delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from app.config import Settings
from app.domain import accounts, messages
from app.domain.base import Command
from app.eventstore.bad_records import UNREADABLE, skip_bad_record
from app.eventstore.envelope import CommandEnvelope, EventEnvelope, domain_event, new_command
from app.eventstore.kafka import connection, producer_is_dead
from app.eventstore.partitioner import partition_for
from app.eventstore.upcasting import upcast
from app.observability import tracing
from app.observability.logs import carrying
from app.observability.metrics import SAGA_COMMANDS
from app.observability.tracing_attributes import trace_attributes

log = logging.getLogger(__name__)

# Namespace of the saga's command ids: uuid5(this, "<step>:<causing event id>").
SAGA_NAMESPACE = uuid.UUID("5f0d9a62-2b8e-4c2f-9d3e-7a1b8c6e4f20")
# The saga acts as itself in the audit trail: its commands carry this principal.
SAGA_PRINCIPAL = "saga"
REFERENCE_PREFIX = "message:"


def reference_for(message_id: str) -> str:
    return f"{REFERENCE_PREFIX}{message_id}"


def message_of(reference: str | None) -> str | None:
    """The message a charge reference pays for, or None when the charge is not the saga's."""
    if reference and reference.startswith(REFERENCE_PREFIX):
        return reference[len(REFERENCE_PREFIX) :]
    return None


# The events the saga acts on; any other is passed over without being decoded.
SAGA_EVENTS = frozenset({"MessageSubmitted", "AccountCharged", "ChargeDeclined"})


def react(event: EventEnvelope) -> list[CommandEnvelope]:
    """What the saga does about one event: pure, so replaying an event repeats the same commands."""
    if event.type not in SAGA_EVENTS:
        return []
    match domain_event(event):
        case messages.MessageSubmitted(price=0):
            return [command(event, "deliver", event.aggregate_id, messages.DeliverMessage())]
        case messages.MessageSubmitted(sender=sender, price=price):
            charge = accounts.Charge(amount=price, reference=reference_for(event.aggregate_id))
            return [command(event, "charge", sender, charge)]
        case accounts.AccountCharged(reference=reference) if message_id := message_of(reference):
            return [command(event, "deliver", message_id, messages.DeliverMessage())]
        case accounts.ChargeDeclined(reference=reference, reason=reason) if message_id := message_of(reference):
            return [command(event, "reject", message_id, messages.RejectMessage(reason=reason))]
        case _:
            return []


def command_id_for(step: str, cause_event_id: str) -> str:
    """The id of the saga's command for `step` ("charge", "deliver", "reject") caused by an event."""
    return str(uuid.uuid5(SAGA_NAMESPACE, f"{step}:{cause_event_id}"))


def command(cause: EventEnvelope, step: str, aggregate_id: str, what: Command) -> CommandEnvelope:
    """A saga command: its id derives from the causing event, so a replayed event repeats it exactly."""
    return new_command(
        what,
        aggregate_id,
        command_id=command_id_for(step, cause.event_id),
        correlation_id=cause.correlation_id,
        causation_id=cause.event_id,
        principal=SAGA_PRINCIPAL,
    )


class PaymentSaga:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = AIOKafkaConsumer(
            settings.topic("events"),
            **connection(settings),
            group_id=settings.saga_group,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        self.producer = self.new_producer()
        self.trace_headers: dict[str, list[tuple[str, bytes]]] = {}  # command id -> its saga step's trace

    def new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(**connection(self.settings), acks="all", enable_idempotence=True, linger_ms=2)

    async def run(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        try:
            while True:
                await self.step()
        finally:
            await self.consumer.stop()
            await self.producer.stop()

    async def step(self) -> int:
        """One batch: send the commands its events cause, await their acks, then commit."""
        try:
            batch = await self.consumer.getmany(timeout_ms=500, max_records=2000)
            commands = [c for records in batch.values() for r in records for c in self.react_to(r)]
            await self.send(commands)
            if batch:
                await self.consumer.commit()
            return len(commands)
        except KafkaError as error:
            # Nothing was committed: the batch is read again and its commands re-sent with the same ids.
            log.warning("payment saga: %r; retrying from the last commit", error)
            await asyncio.sleep(1)
            if producer_is_dead(self.producer):
                log.error("payment saga: the Kafka producer stopped; starting a new one")
                with contextlib.suppress(Exception):
                    await self.producer.stop()
                self.producer = self.new_producer()
                with contextlib.suppress(KafkaError):  # still down: the next failure tries again
                    await self.producer.start()
            await self.rewind()
            return 0

    def react_to(self, record: ConsumerRecord[bytes, bytes]) -> list[CommandEnvelope]:
        """The commands one record causes; none when it is not an event the saga can read."""
        try:
            event = upcast(EventEnvelope.decode(record.value or b""))
            commands = self.react(event)
        except UNREADABLE as error:
            skip_bad_record("saga", record, error)
            return []
        if commands and tracing.enabled:
            # The step joins the trace of the event that caused it; its commands carry the step's context.
            parent = tracing.context_of(record.headers)
            with tracing.span(f"saga {event.type}", trace_attributes(event), parent=parent) as step:
                headers = tracing.headers_of(step)
            self.trace_headers.update((command.command_id, headers) for command in commands)
        return commands

    def react(self, event: EventEnvelope) -> list[CommandEnvelope]:
        commands = react(event)
        with carrying(event.correlation_id, event.event_id):
            for command in commands:
                SAGA_COMMANDS.labels(command.type).inc()
                log.debug("%s %s → %s %s", event.type, event.aggregate_id, command.type, command.aggregate_id)
        return commands

    async def send(self, commands: list[CommandEnvelope]) -> None:
        sent = [
            await self.producer.send(
                self.settings.topic("commands"),
                c.encode(),
                key=c.aggregate_id.encode(),
                partition=partition_for(c.aggregate_id, self.settings.partitions),
                headers=self.trace_headers.pop(c.command_id, None) or None,
            )
            for c in commands
        ]
        await asyncio.gather(*sent)

    async def rewind(self) -> None:
        for tp in self.consumer.assignment():
            committed = await self.consumer.committed(tp)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)


async def run_saga(settings: Settings) -> None:
    """Run the payment saga until cancelled."""
    await PaymentSaga(settings).run()
