"""A shard's pump gathers the commands that follow a transaction into the next one, and starts an
idle shard's first command at once (app/eventstore/processor.py, `EVENTLINE_PROCESSOR_GATHER_MS`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from app.config import Settings
from app.eventstore.processor import Pump


class RecordingWriter:
    """Stands in for a ShardWriter: keeps each batch it is given, as one transaction."""

    def __init__(self, gather_ms: int) -> None:
        self.settings = Settings(processor_gather_ms=gather_ms)
        self.batches: list[list[Any]] = []
        self.applied = asyncio.Event()

    async def apply(self, records: Sequence[Any]) -> None:
        self.batches.append(list(records))
        self.applied.set()


@contextlib.asynccontextmanager
async def pumping(writer: RecordingWriter) -> AsyncIterator[Pump]:
    pump = Pump(writer)  # type: ignore[arg-type]
    task = asyncio.create_task(pump.run())
    try:
        yield pump
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def next_batch(writer: RecordingWriter) -> None:
    await asyncio.wait_for(writer.applied.wait(), timeout=10)
    writer.applied.clear()


@pytest.mark.parametrize(("gather_ms", "batches"), [(0, [["a"], ["b"], ["c"]]), (100, [["a"], ["b", "c"]])])
async def test_commands_right_after_a_transaction_share_the_next_one(gather_ms: int, batches: list[list[str]]) -> None:
    writer = RecordingWriter(gather_ms)
    async with pumping(writer) as pump:
        pump.offer(["a"])
        await next_batch(writer)  # an idle partition: its first command goes at once, alone
        pump.offer(["b"])
        await asyncio.sleep(0)  # the pump wakes: without gathering it takes "b" alone now
        await asyncio.sleep(0)
        pump.offer(["c"])
        await next_batch(writer)
        if len(writer.batches) < len(batches):
            await next_batch(writer)
    assert writer.batches == batches
