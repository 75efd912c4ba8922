"""Kafka client construction shared by every process."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from app.config import Settings

log = logging.getLogger(__name__)


def connection(settings: Settings) -> dict[str, Any]:
    """How every client of this process reaches the brokers: the bootstrap servers and, when the
    brokers require it, this process's SASL principal (each process its own, so ACLs can tell them apart)."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap}
    if settings.kafka_security_protocol != "PLAINTEXT":
        options |= {
            "security_protocol": settings.kafka_security_protocol,
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": settings.kafka_password,
        }
    if settings.kafka_security_protocol == "SASL_SSL":
        options["ssl_context"] = create_ssl_context()  # the system's certificate authorities
    return options


class KafkaUnavailable(RuntimeError):
    """The broker did not answer within the startup budget."""


async def wait_for_kafka(settings: Settings) -> None:
    """Return once the broker answers a metadata request; raise KafkaUnavailable after the budget."""
    deadline = time.monotonic() + settings.startup_timeout_s
    while True:
        client = AIOKafkaClient(**connection(settings), request_timeout_ms=5000)
        try:
            await client.bootstrap()
            return
        except (KafkaError, OSError) as error:
            if time.monotonic() >= deadline:
                raise KafkaUnavailable(
                    f"Kafka at {settings.kafka_bootstrap} did not answer in {settings.startup_timeout_s:.0f}s: {error}"
                ) from error
            log.warning("waiting for Kafka at %s: %s", settings.kafka_bootstrap, error)
            await asyncio.sleep(1)
        finally:
            await client.close()


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection(settings), request_timeout_ms=10000)


def sender_task(producer: AIOKafkaProducer) -> asyncio.Task[None] | None:
    """aiokafka's producer stops for good on some errors (fenced by a newer owner; an
    out-of-order sequence after a broker restart): its sender task ends. aiokafka exposes no
    public flag for this, so the task on its private `_sender` is read (aiokafka 0.14)."""
    task: asyncio.Task[None] | None = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task


def producer_is_dead(producer: AIOKafkaProducer) -> bool:
    """Never started, or stopped: such a producer must be replaced."""
    task = sender_task(producer)
    return task is None or task.done()


def sender_failure(producer: AIOKafkaProducer) -> BaseException | None:
    """What the producer's sender ended on, if it ended on an error. Afterwards aiokafka's
    refusals do not name it: `send` raises IllegalOperation ("not in transaction") and
    `begin_transaction` an AssertionError."""
    task = sender_task(producer)
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception()
