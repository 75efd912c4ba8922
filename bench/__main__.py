"""`make bench`: run the benchmarks, print a table, write results/latest.json and BENCHMARKS.md.

    python -m bench [--events N]

Figures on these shared 2-core machines are noisy: each section measures its
own baseline in the same run and reports the ratio to it as well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.paths import RESULTS, ROOT
from bench.projection import consume_baseline, measure_rebuilds, produce_events
from bench.report import write_markdown
from bench.setup import bench_settings, drop_database

console = Console()
REBUILT = ["accounts", "ledger", "event_log"]


async def read_side(events: int) -> dict[str, Any]:
    settings = await bench_settings()
    try:
        console.print(f"[bold]read side[/bold]: producing {events:,} events …")
        started = time.monotonic()
        produced = await produce_events(settings, events)
        console.print(f"  produced {produced:,} in {time.monotonic() - started:.1f}s; reading them back (baseline) …")
        baseline = await consume_baseline(settings)
        console.print(f"  baseline {baseline['events_per_s']:,.0f} events/s; rebuilding {', '.join(REBUILT)} …")
        rebuilds = await measure_rebuilds(settings, REBUILT)
    finally:
        await drop_database(settings)
    slowest = min(rebuilds.values(), key=lambda r: r["events_per_s"])
    return {
        "events": produced,
        "aiokafka_consume_events_per_s": baseline["events_per_s"],
        "rebuilds": rebuilds,
        "projection_events_per_s": slowest["events_per_s"],
        "rebuild_1m_s": sum(r["seconds"] for r in rebuilds.values()) * 1_000_000 / max(produced, 1),
    }


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "1000000")))
    args = parser.parse_args()
    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine()}
    results["read_side"] = asyncio.run(read_side(args.events))
    flat = {
        "projection_events_per_s": results["read_side"]["projection_events_per_s"],
        "rebuild_1m_s": results["read_side"]["rebuild_1m_s"],
    }
    results.update(flat)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, ROOT / "BENCHMARKS.md")
    table = Table(title="Eventline benchmarks")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in flat.items():
        table.add_row(key, f"{value:,.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
