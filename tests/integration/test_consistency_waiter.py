"""The read-your-writes waiter (app/api/consistency.py) against a real PostgreSQL: it reads the
checkpoints once per notification, not once per waiting request, and a lost notification
costs a recheck's delay, never the answer."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.consistency import RECHECK_S, ConsistencyWaiter
from app.config import Settings
from app.db import create_engine, create_query_engine
from app.eventstore import position
from projections import checkpoints
from projections.tables import checkpoints as checkpoint_rows
from tests.support import fresh_namespace
from tests.waiting import eventually


class CountingWaiter(ConsistencyWaiter):
    reads = 0

    async def read_checkpoints(self) -> None:
        self.reads += 1
        await super().read_checkpoints()


async def read_done(waiter: ConsistencyWaiter) -> bool:
    """The waiter has read the checkpoints at least once, and no read is in flight."""
    return waiter.reading is not None and waiter.reading[1].done()


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings, own_database=True, consistency_timeout_s=5)


async def move_checkpoint(engine: AsyncEngine, ns: Settings, next_offset: int, notify: bool) -> None:
    """What a projector's batch does to the `accounts` checkpoint of events partition 0."""
    async with engine.begin() as connection:
        await checkpoints.ensure(connection, "accounts", [("events", 0)])
        await connection.execute(
            update(checkpoint_rows)
            .where(checkpoint_rows.c.projection == "accounts", checkpoint_rows.c.partition == 0)
            .values(next_offset=next_offset)
        )
        if notify:
            await checkpoints.notify(connection, ns.namespace, ["accounts"])


async def test_requests_waiting_for_a_projection_read_its_checkpoints_once_per_notification(ns: Settings) -> None:
    writer, queries = create_engine(ns), create_query_engine(ns)
    waiter = CountingWaiter(ns, queries)
    await move_checkpoint(writer, ns, 0, notify=False)
    unconnected = waiter.moved
    await waiter.start()
    try:

        async def listening() -> bool:
            return waiter.moved is not unconnected  # the listener relays a notification once it connects

        await eventually(listening, True, timeout=30)
        token = position.encode({0: 5})  # offset 5: applied once the checkpoint passes it
        before, started = waiter.reads, time.monotonic()
        waiting = []
        for _ in range(20):  # one after another, as reads right after their commands arrive
            waiting.append(asyncio.create_task(waiter.wait("accounts", token)))
            await asyncio.sleep(0.005)  # paces the arrivals
        await eventually(partial(read_done, waiter), True, timeout=30)
        assert not any(task.done() for task in waiting)
        # One read for the first request, and one per recheck the wait may have reached on a slow machine.
        allowed = 1 + int((time.monotonic() - started) / RECHECK_S)
        assert waiter.reads - before <= allowed, f"{waiter.reads - before} reads for 20 requests"
        await move_checkpoint(writer, ns, 6, notify=True)
        async with asyncio.timeout(RECHECK_S * 4):
            await asyncio.gather(*waiting)
    finally:
        await waiter.stop()
        await queries.dispose()
        await writer.dispose()


async def test_a_lost_notification_costs_a_recheck_not_the_answer(ns: Settings) -> None:
    writer, queries = create_engine(ns), create_query_engine(ns)
    waiter = ConsistencyWaiter(ns, queries)  # not started: no listener, so no notification arrives at all
    await move_checkpoint(writer, ns, 0, notify=False)
    try:
        waiting = asyncio.create_task(waiter.wait("accounts", position.encode({0: 5})))
        await eventually(partial(read_done, waiter), True, timeout=30)  # it has seen offset 0
        assert not waiting.done()
        await move_checkpoint(writer, ns, 6, notify=False)
        async with asyncio.timeout(RECHECK_S * 4):
            await waiting
    finally:
        await queries.dispose()
        await writer.dispose()
