"""A/B of `EVENTLINE_PROCESSOR_GATHER_MS` in one run: closed loops at 16 and 64 clients, CPU per command.

python -m bench.gather 0,5,10      (each setting gets a fresh namespace, processes and database)
"""

from __future__ import annotations

import asyncio
import sys

from bench.cpu import CpuMeter, infra_pids
from bench.setup import bench_settings
from bench.write_side import closed_loop, serving_eventline


async def measure(gather_ms: int, concurrency: tuple[int, ...] = (16, 64)) -> None:
    settings = await bench_settings(processor_gather_ms=gather_ms)
    async with serving_eventline(settings, 1000) as (base, accounts, services):
        for clients in concurrency:
            meter = CpuMeter({s.name.removeprefix("eventline-"): s.pid for s in services} | infra_pids())
            meter.start()
            run = await asyncio.to_thread(closed_loop, base, accounts, concurrency=clients, warmup=2.0, duration=10.0)
            cpu, done = meter.stop(), run["ok_per_s"]
            per_command = {name: round(share / done * 1000, 2) for name, share in cpu.items()}
            print(
                f"gather {gather_ms} ms, {clients} clients: {done:.0f} commands/s, "
                f"p50 {run['latency']['p50_ms']:.1f} ms, p99 {run['latency']['p99_ms']:.1f} ms; "
                f"CPU ms per command {per_command}, total {sum(per_command.values()):.2f}",
                flush=True,
            )


async def main(settings: list[int]) -> None:
    for gather_ms in settings:
        await measure(gather_ms)


if __name__ == "__main__":
    asyncio.run(main([int(value) for value in (sys.argv[1] if len(sys.argv) > 1 else "0,5").split(",")]))
