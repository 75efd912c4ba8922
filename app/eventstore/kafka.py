"""Kafka client construction shared by every process."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from app.config import Settings

log = logging.getLogger(__name__)


class KafkaUnavailable(RuntimeError):
    """The broker did not answer within the startup budget."""


async def wait_for_kafka(settings: Settings) -> None:
    """Return once the broker answers a metadata request; raise KafkaUnavailable after the budget."""
    deadline = time.monotonic() + settings.startup_timeout_s
    while True:
        client = AIOKafkaClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000)
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
    return AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10000)


def producer_is_dead(producer: AIOKafkaProducer) -> bool:
    """aiokafka's idempotent producer stops for good on some errors (an out-of-order sequence
    after a broker restart): its sender task has ended. aiokafka exposes no public flag for
    this, so the sender task is checked; such a producer must be replaced."""
    sender = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return sender is None or sender.done()  # never started, or stopped
