"""A phase starts from a drained system: no command waits for the processor, no event for a projection.

Back-to-back phases otherwise measure the previous phase's backlog: on a
machine slower than the closed loop's rate, the commands still queued when it
stops would be answered during the next phase and counted as its latency.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.config import Settings
from app.eventstore.kafka import connection


async def processor_lag(settings: Settings) -> int:
    """Commands stored but not yet decided: the commands topic's end against the processors' commits."""
    consumer = AIOKafkaConsumer(**connection(settings), group_id=settings.processor_group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic("commands"), p) for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
        lag = 0
        for tp in tps:
            lag += max(0, ends[tp] - (await consumer.committed(tp) or 0))
        return lag
    finally:
        await consumer.stop()


async def projection_lag(base: str) -> int | None:
    """Events not yet applied, over every projection, as `/projections` reports it (None: unknown)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        views = (await client.get("/projections")).json()
    lags = [view.get("lag") for view in views]
    return None if None in lags else sum(lags)


async def drained(settings: Settings, base: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until nothing is queued anywhere; report how long that took and the lags first seen."""
    started = time.monotonic()
    first: dict[str, Any] = {}
    while True:
        lags = {"processor": await processor_lag(settings), "projections": await projection_lag(base)}
        first = first or lags
        if lags["processor"] == 0 and lags["projections"] == 0:
            return {"waited_s": round(time.monotonic() - started, 2), "lag_at_end_of_previous": first}
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the system did not drain within {timeout:.0f} s: {lags}")
        await asyncio.sleep(0.2)
