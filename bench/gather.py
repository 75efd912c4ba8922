"""A/B of one processor setting in one run: closed loops at 16 and 64 clients, CPU per command.

python -m bench.gather 0,5,10                          EVENTLINE_PROCESSOR_GATHER_MS
python -m bench.gather 8,2,1 processor_shards          EVENTLINE_PROCESSOR_SHARDS
(each value gets a fresh namespace, processes and database; a value may be named twice, e.g. 8,1,8,1,
so a drift of the machine's speed shows as a difference between the repeats)
"""

from __future__ import annotations

import asyncio
import sys

from bench.setup import bench_settings
from bench.write_side import closed_loops_with_cpu, serving_eventline


async def main(values: list[int], setting: str) -> None:
    for value in values:
        ns = await bench_settings(**{setting: value})
        async with serving_eventline(ns, 1000) as (base, accounts, services):
            await closed_loops_with_cpu(f"{setting} {value}", base, accounts, services)


if __name__ == "__main__":
    values = [int(value) for value in (sys.argv[1] if len(sys.argv) > 1 else "0,5").split(",")]
    asyncio.run(main(values, sys.argv[2] if len(sys.argv) > 2 else "processor_gather_ms"))
