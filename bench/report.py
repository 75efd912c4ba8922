"""BENCHMARKS.md from a results dict: method, machine, figures and ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_markdown(results: dict[str, Any], path: Path) -> None:
    read = results["read_side"]
    base = read["aiokafka_consume_events_per_s"]
    rows = "\n".join(
        f"| `{name}` | {r['events']:,} | {r['seconds']:.1f} | {r['events_per_s']:,.0f} | "
        f"{r['events_per_s'] / base:.2f} |"
        for name, r in read["rebuilds"].items()
    )
    machine = results["machine"]
    path.write_text(f"""# Benchmarks

Measured by `make bench` (`python -m bench`), which writes `bench/results/latest.json`
and this file. Last run: {results['when']} on {machine['cpus']} CPUs, Python {machine['python']},
with Kafka, PostgreSQL and the benchmark on the same machine. These machines are
shared and noisy: compare the ratios to the baseline measured in the same run, not
absolute figures across runs.

## Read side: rebuild throughput

{read['events']:,} events (accounts of 100 events each) are produced straight onto
`<ns>.events`; then each projection is rebuilt from offset 0 with `eventline rebuild`'s
code path (replay into fresh tables, catch up, swap). Baseline: reading and
decoding the same events with aiokafka alone ({base:,.0f} events/s).

| projection | events | seconds | events/s | ratio to baseline |
|---|---:|---:|---:|---:|
{rows}

- `projection_events_per_s` (slowest projection): **{read['projection_events_per_s']:,.0f}** (target ≥ 20,000)
- `rebuild_1m_s` (the three rebuilds, per million events): **{read['rebuild_1m_s']:.1f} s** (target ≤ 60 s)
""")
