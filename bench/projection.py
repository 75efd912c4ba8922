"""Read side: projection and rebuild throughput over a large event log.

The events are produced straight onto `<ns>.events` (valid envelopes of
accounts being opened and credited), which is what a rebuild reads; the
write path has its own benchmark. The baseline, measured in the same run, is
reading and decoding the same events with aiokafka and doing nothing else.

Both run in this process with the garbage collector tuned as a projector's and
`eventline rebuild`'s are (Settings.gc_young_threshold), so the ratio compares
like with like; the slowest projection is rebuilt once more with Python's
default threshold (the A/B), and once under py-spy (where its time goes).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import create_engine
from app.eventstore.envelope import EventEnvelope, utc_now
from app.eventstore.partitioner import partition_for
from app.process_tuning import tune_garbage_collector
from bench import profile
from bench.setup import read_to_end
from projections.rebuild import RebuildReport, default_workers, rebuild, rebuild_together
from projections.registry import PROJECTIONS


def account_events(account_id: str, count: int) -> list[EventEnvelope]:
    now = utc_now()
    events = [
        EventEnvelope(
            str(uuid.uuid4()),
            "AccountOpened",
            1,
            "Account",
            account_id,
            1,
            now,
            str(uuid.uuid4()),
            "bench",
            "bench",
            {"owner": "Bench", "currency": "EUR"},
        )
    ]
    for version in range(2, count + 1):
        command_id = str(uuid.uuid4())
        events.append(
            EventEnvelope(
                str(uuid.uuid4()),
                "FundsDeposited",
                1,
                "Account",
                account_id,
                version,
                now,
                command_id,
                command_id,
                command_id,
                {"amount": 10, "reference": None, "balance_after": 10 * (version - 1)},
            )
        )
    return events


async def produce_events(settings: Settings, total: int, per_account: int = 100) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
        compression_type=None,
    )
    await producer.start()
    produced = 0
    try:
        while produced < total:
            account_id = str(uuid.uuid4())
            partition = partition_for(account_id, settings.partitions)
            batch = account_events(account_id, min(per_account, total - produced))
            for event in batch:
                await producer.send(
                    settings.topic("events"),
                    event.encode(),
                    key=account_id.encode(),
                    partition=partition,
                    headers=event.headers(),
                )
            produced += len(batch)
        await producer.flush()
    finally:
        await producer.stop()
    return produced


async def consume_baseline(settings: Settings) -> dict[str, float]:
    """Read and decode every event with aiokafka: the ceiling a projection cannot beat."""
    count, seconds = await read_to_end(
        settings, "events", EventEnvelope.decode, max_partition_fetch_bytes=4 * 1024 * 1024
    )
    return {"events": count, "seconds": seconds, "events_per_s": count / seconds}


@contextlib.contextmanager
def young_threshold(threshold: int) -> Iterator[None]:
    """This process's youngest-generation GC threshold set to `threshold` for a while."""
    before = gc.get_threshold()
    tune_garbage_collector(threshold)  # what every Eventline process does at start
    try:
        yield
    finally:
        gc.set_threshold(*before)


def report_figures(report: RebuildReport) -> dict[str, Any]:
    return {
        "events": report.events,
        "seconds": report.seconds,
        "events_per_s": report.events_per_s,
        "replay_seconds": report.replay_seconds,
        "index_seconds": report.index_seconds,
        "swap_seconds": report.swap_seconds,
    }


async def measure_rebuilds(settings: Settings, names: list[str]) -> dict[str, Any]:
    """Each projection rebuilt alone in this process (what one projector process keeps up with), then
    all of them from one replay shared by one process per core (as `eventline rebuild --all` does).

    The slowest is then rebuilt again, alternated with the baseline (the ratio the target is about),
    once with Python's default GC threshold, and once under py-spy."""
    engine = create_engine(settings)
    results: dict[str, Any] = {}
    try:
        for name in names:
            results[name] = report_figures(await rebuild(settings, engine, PROJECTIONS[name]))
            plain = dataclasses.replace(PROJECTIONS[name], bulk_apply=None)
            if PROJECTIONS[name].bulk_apply:  # A/B: the same rebuild inserting (unnest) instead of COPY
                results[name]["inserted_events_per_s"] = (await rebuild(settings, engine, plain)).events_per_s
            if PROJECTIONS[name].insert_only:  # A/B: the same rebuild maintaining its indexes row by row
                indexed = await rebuild(settings, engine, dataclasses.replace(plain, insert_only=False))
                results[name]["indexes_maintained_events_per_s"] = indexed.events_per_s
        slowest = min(names, key=lambda name: results[name]["events_per_s"])
        results[slowest]["alternated"] = await alternated_with_baseline(settings, engine, slowest)
        with young_threshold(DEFAULT_YOUNG_THRESHOLD):  # A/B: Python's own threshold
            results[slowest]["gc_default_events_per_s"] = (
                await rebuild(settings, engine, PROJECTIONS[slowest])
            ).events_per_s
        results[slowest]["profile"] = await profile_rebuild(settings, engine, slowest)
        workers = default_workers(settings)
        started = time.monotonic()
        reports = await rebuild_together(settings, engine, [PROJECTIONS[name] for name in names], workers=workers)
        results["together"] = {
            "events": max(r.events for r in reports),
            "seconds": time.monotonic() - started,
            "projections": names,
            "workers": workers,
        }
    finally:
        await engine.dispose()
    return results


DEFAULT_YOUNG_THRESHOLD = 700  # CPython's
ALTERNATED_ROUNDS = 3


async def alternated_with_baseline(settings: Settings, engine: AsyncEngine, name: str) -> list[dict[str, float]]:
    """The baseline and a rebuild of `name`, back to back, ALTERNATED_ROUNDS times: each ratio
    compares two measurements a few seconds apart. The one baseline of the section is measured before
    every rebuild of it, minutes earlier, and this shared machine drifts by more than the target's
    margin in that time (docs/projections.md, "Measuring the rebuild against its baseline")."""
    rounds = []
    for _ in range(ALTERNATED_ROUNDS):
        await vacuum(engine)
        baseline = (await consume_baseline(settings))["events_per_s"]
        rebuilt = (await rebuild(settings, engine, PROJECTIONS[name])).events_per_s
        rounds.append({"baseline_events_per_s": baseline, "events_per_s": rebuilt, "ratio": rebuilt / baseline})
    return rounds


async def vacuum(engine: AsyncEngine) -> None:
    """VACUUM ANALYZE the bench's database, now: the autovacuum that each swapped-in or retired
    table of a million rows is owed would otherwise start a minute later, in the middle of whatever
    rebuild is measured then, and take one of the machine's two cores from it."""
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM (ANALYZE)"))


async def profile_rebuild(settings: Settings, engine: AsyncEngine, name: str) -> dict[str, Any] | None:
    """py-spy's summary of one more rebuild of `name` in this process (None without py-spy)."""
    recording = profile.start_recording(os.getpid(), f"rebuild-{name}", seconds=600)
    if recording is None:
        return None
    try:
        await asyncio.sleep(1.0)  # py-spy attaches before the rebuild starts
        report = await rebuild(settings, engine, PROJECTIONS[name])
    finally:
        recording[0].send_signal(signal.SIGINT)  # py-spy writes what it sampled so far and exits
    summary = profile.finish_recording(recording)
    return None if summary is None else summary | {"events_per_s_while_profiled": report.events_per_s}
