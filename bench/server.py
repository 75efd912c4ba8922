"""A/B of the API's HTTP server in one run: closed loops, CPU per command.

python -m bench.server uvicorn,granian,granian-rust   (each on a fresh namespace, processes and database)

uvicorn is `eventline api` itself (httptools, uvloop); granian serves the same
app from bench/granian_api.py, with its asyncio or its Rust task implementation.
"""

from __future__ import annotations

import asyncio
import sys

from bench.processes import VENV_BIN
from bench.setup import bench_settings
from bench.write_side import closed_loops_with_cpu, serving_eventline

GRANIAN = [str(VENV_BIN / "python"), "-m", "bench.granian_api"]
API = {
    "uvicorn": [str(VENV_BIN / "eventline"), "api"],
    "granian": [*GRANIAN, "asyncio"],
    "granian-rust": [*GRANIAN, "rust"],
}


async def main(servers: list[str]) -> None:
    for server in servers:
        settings = await bench_settings()
        async with serving_eventline(settings, 1000, api=API[server]) as (base, accounts, services):
            await closed_loops_with_cpu(server, base, accounts, services)


if __name__ == "__main__":
    asyncio.run(main((sys.argv[1] if len(sys.argv) > 1 else "uvicorn,granian,granian-rust").split(",")))
