"""A/B of one setting in one run: closed loops at 16 and 64 clients, CPU per command.

python -m bench.gather 0,5,10                          EVENTLINE_PROCESSOR_GATHER_MS
python -m bench.gather 8,2,1 processor_shards          EVENTLINE_PROCESSOR_SHARDS
BENCH_OPEN_RATE=450 python -m bench.gather 20,5 projection_linger_ms
                                                       …and an open loop with visibility reads
BENCH_DEPOSIT_BODY='{"amount":1,"reference":"bench deposit"}' python -m bench.gather off,on,off,on privacy
                                                       personal fields sealed or not (docs/privacy.md)
(each value gets a fresh namespace, processes and database; a value may be named twice, e.g. 8,1,8,1,
so a drift of the machine's speed shows as a difference between the repeats)
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections import Counter
from pathlib import Path

from app.config import Settings
from bench.drain import drained
from bench.processes import run_load
from bench.setup import bench_kek, bench_settings
from bench.write_side import closed_loops_with_cpu, serving_eventline

# aiokafka's warning for a produce it retries, counted once a line and `[N more like this …]` after it.
RETRIED = re.compile(r"Got error produce response.*?Error: <class '([\w.]+)'>(?: \[(\d+) more like this)?")


def produce_retries(log: str) -> Counter[str]:
    """Produces the processor retried, by error: each costs the transaction a retry backoff."""
    found: Counter[str] = Counter()
    for error, more in RETRIED.findall(log):
        found[error.rsplit(".", 1)[-1]] += 1 + int(more or 0)
    return found


def override(setting: str, value: str) -> dict[str, object]:
    """`privacy on|off`: personal fields sealed or not; any other setting takes an integer."""
    if setting == "privacy":
        return {"privacy_keks": bench_kek() if value == "on" else ""}
    return {setting: int(value)}


async def main(values: list[str], setting: str) -> None:
    for value in values:
        ns = await bench_settings(**override(setting, value))
        async with serving_eventline(ns, 1000) as (base, accounts, services):
            processor = next(s for s in services if s.name == "eventline-processor")
            before = produce_retries(processor.tail(100_000_000))
            figures = await closed_loops_with_cpu(f"{setting} {value}", base, accounts, services)
            retried = produce_retries(processor.tail(100_000_000)) - before
            commands = sum(run["commands_per_s"] * 12 for run in figures.values())  # 2 s warm-up + 10 s each
            print(f"{setting} {value}: produce retries {dict(retried)} over about {commands:,.0f} commands", flush=True)
            if OPEN_RATE:
                await open_loop_with_visibility(f"{setting} {value}", base, accounts, ns)


# BENCH_OPEN_RATE=450 adds an open loop at that rate with visibility reads (as make bench's), after the
# closed loops and once nothing is queued: latency and read-your-writes under a load carried with room.
OPEN_RATE = float(os.environ.get("BENCH_OPEN_RATE", "0"))


async def open_loop_with_visibility(label: str, base: str, accounts: Path, ns: Settings) -> None:
    await drained(ns, base)
    run = await asyncio.to_thread(
        run_load, base, accounts, mode="open", rate=OPEN_RATE, visibility_every=5, warmup=2.0, duration=10.0
    )
    latency, visible = run["latency"], run["visibility"]
    print(
        f"{label}, open loop {OPEN_RATE:.0f}/s: p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms; "
        f"visibility p50 {visible['p50_ms']:.1f} ms, p99 {visible['p99_ms']:.1f} ms ({visible['samples']} reads)",
        flush=True,
    )


if __name__ == "__main__":
    values = (sys.argv[1] if len(sys.argv) > 1 else "0,5").split(",")
    asyncio.run(main(values, sys.argv[2] if len(sys.argv) > 2 else "processor_gather_ms"))
