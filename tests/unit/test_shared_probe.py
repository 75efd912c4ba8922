"""Readiness probes asked for at once share one probe; the next ask after it ends runs a new one."""

from __future__ import annotations

import asyncio

from app.api.readiness import SharedProbe


async def test_callers_arriving_while_a_probe_runs_share_its_answer() -> None:
    shared: SharedProbe[int] = SharedProbe()
    release = asyncio.Event()

    async def probe() -> int:
        await release.wait()
        return shared.started

    callers = [asyncio.create_task(shared.get(probe)) for _ in range(100)]
    await asyncio.sleep(0)  # every caller is waiting now
    release.set()
    assert await asyncio.gather(*callers) == [1] * 100
    assert shared.started == 1
    assert await shared.get(probe) == 2  # no answer outlives its probe: an outage shows at once


async def test_a_caller_that_gives_up_does_not_cancel_the_probe_of_the_others() -> None:
    shared: SharedProbe[str] = SharedProbe()
    release = asyncio.Event()

    async def probe() -> str:
        await release.wait()
        return "ok"

    impatient, patient = asyncio.create_task(shared.get(probe)), asyncio.create_task(shared.get(probe))
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await patient == "ok"
