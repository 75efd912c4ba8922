"""Rebuild throughput A/B in one process: `python -m bench.rebuild_ab EVENTS PROJECTIONS ROUNDS THRESHOLDS`.

    python -m bench.rebuild_ab 300000 event_log,ledger 3 700,20000

produces EVENTS events on a fresh namespace, then ROUNDS times, for each young-generation GC
threshold in turn: reads and decodes them all (the baseline), and rebuilds each projection alone
(`eventline rebuild`'s code path), printing events/s and the ratio to that round's baseline.
Alternating the settings in one process, on the same events, keeps the machine's drift out of the
comparison. To A/B a code change, run it in the two checkouts one after the other, twice.
"""

from __future__ import annotations

import contextlib
import sys

import uvloop

from app.db import create_engine
from bench.projection import consume_baseline, produce_events, young_threshold
from bench.setup import bench_settings, delete_namespace_topics, drop_database
from projections.rebuild import rebuild
from projections.registry import PROJECTIONS


async def alternate(events: int, names: list[str], rounds: int, thresholds: list[int]) -> None:
    settings = await bench_settings()
    try:
        await produce_events(settings, events)
        engine = create_engine(settings)
        try:
            for _ in range(rounds):
                for threshold in thresholds:
                    with young_threshold(threshold):
                        base = (await consume_baseline(settings))["events_per_s"]
                        line = [f"gc {threshold:>6}  baseline {base:9,.0f}/s"]
                        for name in names:
                            report = await rebuild(settings, engine, PROJECTIONS[name])
                            line.append(
                                f"{name} {report.events_per_s:7,.0f}/s ({report.events_per_s / base:.3f}; "
                                f"replay {report.replay_seconds:.1f}s, indexes {report.index_seconds:.1f}s)"
                            )
                    print(" | ".join(line), flush=True)
        finally:
            await engine.dispose()
    finally:
        with contextlib.suppress(Exception):
            await delete_namespace_topics(settings)
        await drop_database(settings)


def main() -> None:
    events, names, rounds, thresholds = sys.argv[1:5]
    uvloop.run(alternate(int(events), names.split(","), int(rounds), [int(t) for t in thresholds.split(",")]))


if __name__ == "__main__":
    main()
