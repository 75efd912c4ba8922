"""A/B of the API's HTTP server in one run: closed loops, CPU per command.

python -m bench.server uvicorn,granian,granian-rust   (each on a fresh namespace, processes and database)

uvicorn is `eventline api` itself (httptools, uvloop); granian serves the same
app from bench/granian_api.py, with its asyncio or its Rust task implementation.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from bench.cpu import CpuMeter, infra_pids
from bench.processes import VENV_BIN
from bench.setup import bench_settings
from bench.write_side import closed_loop, serving_eventline

GRANIAN = [str(VENV_BIN / "python"), "-m", "bench.granian_api"]
API = {
    "uvicorn": [str(VENV_BIN / "eventline"), "api"],
    "granian": [*GRANIAN, "asyncio"],
    "granian-rust": [*GRANIAN, "rust"],
}


async def measure(server: str, concurrency: tuple[int, ...] = (16, 64)) -> dict[str, Any]:
    """Commands/s, latency and CPU ms per command by process, for each client count."""
    settings = await bench_settings()
    figures: dict[str, Any] = {}
    async with serving_eventline(settings, 1000, api=API[server]) as (base, accounts, services):
        for clients in concurrency:
            meter = CpuMeter({s.name.removeprefix("eventline-"): s.pid for s in services} | infra_pids())
            meter.start()
            run = await asyncio.to_thread(closed_loop, base, accounts, concurrency=clients, warmup=2.0, duration=10.0)
            cpu, done = meter.stop(), run["ok_per_s"]
            per_command = {name: round(share / done * 1000, 3) for name, share in cpu.items()}
            figures[f"closed_{clients}"] = {
                "commands_per_s": round(done, 1),
                "p50_ms": run["latency"]["p50_ms"],
                "p99_ms": run["latency"]["p99_ms"],
                "cpu_ms_per_command": per_command,
                "cpu_ms_per_command_total": round(sum(per_command.values()), 3),
            }
            print(
                f"{server}, {clients} clients: {done:.0f} commands/s, "
                f"p50 {run['latency']['p50_ms']:.1f} ms, p99 {run['latency']['p99_ms']:.1f} ms; "
                f"CPU ms per command {per_command}, total {sum(per_command.values()):.2f}",
                flush=True,
            )
    return figures


async def main(servers: list[str]) -> None:
    for server in servers:
        await measure(server)


if __name__ == "__main__":
    asyncio.run(main((sys.argv[1] if len(sys.argv) > 1 else "uvicorn,granian,granian-rust").split(",")))
