"""A/B of `EVENTLINE_PROCESSOR_GATHER_MS` in one run: closed loops at 16 and 64 clients, CPU per command.

python -m bench.gather 0,5,10      (each setting gets a fresh namespace, processes and database)
"""

from __future__ import annotations

import asyncio
import sys

from bench.setup import bench_settings
from bench.write_side import closed_loops_with_cpu, serving_eventline


async def main(settings: list[int]) -> None:
    for gather_ms in settings:
        ns = await bench_settings(processor_gather_ms=gather_ms)
        async with serving_eventline(ns, 1000) as (base, accounts, services):
            await closed_loops_with_cpu(f"gather {gather_ms} ms", base, accounts, services)


if __name__ == "__main__":
    asyncio.run(main([int(value) for value in (sys.argv[1] if len(sys.argv) > 1 else "0,5").split(",")]))
