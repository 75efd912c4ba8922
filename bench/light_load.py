"""What a command costs when the load is light: CPU per process and the broker's threads, in an open loop.

    python -m bench.light_load                 100 commands/s; then with the projector paused; then idle
    python -m bench.light_load 300 projector   another rate, another process to pause (processor, api)

Nearly every cost on the write path is per transaction, per fetch or per request, so
the CPU one command costs grows as the rate falls (docs/write-path.md, "Why latency is
not met at half capacity"). Each phase: 1 s of warm-up, 8 s measured. Pausing a process
(SIGSTOP) shows how much of the broker's work its fetches cause.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench.cpu import TICKS, CpuMeter, infra_pids
from bench.processes import run_load
from bench.setup import bench_settings
from bench.write_side import serving_eventline

WARMUP_S, DURATION_S = 1.0, 8.0


def thread_seconds(pid: int) -> dict[int, tuple[str, float]]:
    """Each thread of `pid`: its name (digits folded, so a pool is one line) and CPU seconds."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        found[int(tid)] = (re.sub(r"\d+", "N", name), (int(fields[11]) + int(fields[12])) / TICKS)
    return found


async def main(rate: float, pause: str) -> None:
    ns = await bench_settings()
    async with serving_eventline(ns, 1000) as (base, accounts, services):
        processes = {s.name.removeprefix("eventline-"): s.pid for s in services}
        broker = infra_pids()["kafka"]

        async def phase(label: str, paused: str | None = None) -> None:
            if paused:
                os.kill(processes[paused], signal.SIGSTOP)
            try:
                meter = CpuMeter(processes | infra_pids())
                threads_before, started = thread_seconds(broker), time.monotonic()
                meter.start()
                run = await asyncio.to_thread(
                    run_load, base, accounts, mode="open", rate=rate, warmup=WARMUP_S, duration=DURATION_S
                )
                cpu = meter.stop()
                elapsed = time.monotonic() - started
                threads_after = thread_seconds(broker)
            finally:
                if paused:
                    os.kill(processes[paused], signal.SIGCONT)
            by_thread: defaultdict[str, float] = defaultdict(float)
            for tid, (name, seconds) in threads_after.items():
                by_thread[name] += seconds - threads_before.get(tid, (name, 0.0))[1]
            print(
                f"{label}: {sum(cpu.values()):.2f} cores, {1000 * sum(cpu.values()) / rate:.1f} ms per command "
                f"({', '.join(f'{k} {v:.2f}' for k, v in cpu.items())}); broker {1000 * cpu['kafka'] / rate:.2f} "
                f"ms per command; p99 {run['latency']['p99_ms']:.1f} ms",
                flush=True,
            )
            busiest = sorted(by_thread.items(), key=lambda item: -item[1])[:6]
            top = ", ".join(f"{name} {seconds / elapsed:.3f}" for name, seconds in busiest)
            print(f"  broker threads (share of a core): {top}", flush=True)
            await asyncio.sleep(3)  # let the backlog of the phase drain before the next

        await phase(f"{rate:.0f}/s")
        await phase(f"{rate:.0f}/s, {pause} paused", pause)
        await phase(f"{rate:.0f}/s again")
        meter = CpuMeter(processes | infra_pids())
        meter.start()
        await asyncio.sleep(DURATION_S)
        idle = meter.stop()
        print(f"idle: {sum(idle.values()):.2f} cores ({', '.join(f'{k} {v:.2f}' for k, v in idle.items())})")


if __name__ == "__main__":
    asyncio.run(
        main(float(sys.argv[1]) if len(sys.argv) > 1 else 100.0, sys.argv[2] if len(sys.argv) > 2 else "projector")
    )
