"""`make bench`: run the benchmarks, print a table, write results/latest.json and BENCHMARKS.md.

    python -m bench [--events N]       BENCH_QUICK=1 shrinks every measurement (a smoke run)
                                       BENCH_LAYOUT=split|run picks Eventline's process layout

Figures on these shared 2-core machines are noisy: each section measures its
own baseline in the same run and reports the ratio to it as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop
from aiokafka.admin import NewTopic
from rich.console import Console
from rich.table import Table

from app.config import Settings
from app.eventstore.kafka import admin_client
from bench import ceiling, write_side
from bench.cluster import single_and_cluster
from bench.levers import measure_levers
from bench.paths import RESULTS, ROOT
from bench.privacy import measure_privacy
from bench.projection import consume_baseline, measure_rebuilds, produce_events, young_threshold
from bench.report import FIGURES, write_markdown
from bench.restore import idempotency_only, measure_restore
from bench.setup import bench_settings, delete_namespace_topics, drop_database
from bench.startup import measure_startup
from bench.streams import measure_streams
from bench.tracing import measure_tracing

console = Console()
REBUILT = ["accounts", "ledger", "event_log"]


def say(text: str) -> None:
    console.print(text, highlight=False)


def plan(quick: bool) -> dict[str, Any]:
    return {
        "quick": quick,
        "events": 100_000 if quick else 1_000_000,
        "aggregates": 10_000 if quick else 100_000,
        "remembered": 100_000 if quick else 1_000_000,
        "accounts": 1000,
        "concurrency": [16, 64, 256],
        "rate": None,  # the open loop's commands/s; None: half of the 64-client capacity measured
        "light_rate": 100.0,  # the same probes under light load: the latency floor, without queueing
        "visibility_every": 5,
        "warmup": 1.0 if quick else 2.0,
        "duration": 2.0 if quick else 10.0,
        "ceiling_seconds": 2.0 if quick else 8.0,
        "perf_records": 100_000 if quick else 1_000_000,
        "profile": True,
        "streams": 200 if quick else 2000,  # notification streams held open on one API process
        "stream_rate": 200.0,  # deposits/s while they are open
        "privacy_events": 20_000 if quick else 200_000,  # deposits with a sealed reference, rebuilt
    }


async def read_side(events: int) -> dict[str, Any]:
    settings = await bench_settings()
    try:
        say(f"[bold]read side[/bold]: producing {events:,} events …")
        started = time.monotonic()
        produced = await produce_events(settings, events)
        say(f"  produced {produced:,} in {time.monotonic() - started:.1f}s; reading them back (baseline) …")
        with young_threshold(settings.gc_young_threshold):  # as in a projector, for the baseline too
            baseline = await consume_baseline(settings)
            say(f"  baseline {baseline['events_per_s']:,.0f} events/s; rebuilding {', '.join(REBUILT)} …")
            rebuilds = await measure_rebuilds(settings, REBUILT)
    finally:
        with contextlib.suppress(Exception):
            await delete_namespace_topics(settings)
        await drop_database(settings)
    together = rebuilds.pop("together")
    slowest = min(rebuilds.values(), key=lambda r: r["events_per_s"])
    return {
        "events": produced,
        "gc_young_threshold": settings.gc_young_threshold,
        "aiokafka_consume_events_per_s": baseline["events_per_s"],
        "rebuilds": rebuilds,
        "rebuilt_together": together,
        "projection_events_per_s": slowest["events_per_s"],
        # The target's figure: the median of the slowest projection's rebuilds over a baseline read
        # just before each (bench/projection.alternated_with_baseline).
        "slowest_over_baseline": statistics.median(r["ratio"] for r in slowest["alternated"]),
        # The read models rebuilt from the log: one replay for all of them, per million events.
        "rebuild_1m_s": together["seconds"] * 1_000_000 / max(produced, 1),
        "rebuild_1m_s_one_by_one": sum(r["seconds"] for r in rebuilds.values()) * 1_000_000 / max(produced, 1),
    }


async def write(p: dict[str, Any], layout: str) -> dict[str, Any]:
    say(
        f"[bold]write side[/bold]: Eventline ({layout}), CRUD, eventsourcing; "
        f"{p['warmup']:.0f}s warm-up + {p['duration']:.0f}s per measurement"
    )
    results: dict[str, Any] = {"eventline": await write_side.eventline(p["accounts"], p, layout, say)}
    cores = os.cpu_count() or 2
    # The peers in one process, then as one would deploy them on this machine: a uvicorn worker per core.
    for key, name, workers in (
        ("crud", "crud", 1),
        ("eventsourcing", "eventsourcing", 1),
        ("crud_2w", "crud", cores),
        ("eventsourcing_2w", "eventsourcing", cores),
    ):
        try:
            results[key] = await write_side.peer(name, p["accounts"], p, say, workers=workers)
        except Exception as error:  # one peer that fails to serve must not lose Eventline's figures
            results[key] = {"error": f"{type(error).__name__}: {error}"}
            say(f"[red]{key} failed[/red]: {error}")
    say("  the targets' ratios: Eventline, CRUD (a worker per core) and eventsourcing back to back, twice")
    try:
        results["against_peers"] = await write_side.against_peers(p["accounts"], p, say, workers=cores)
    except Exception as error:
        results["against_peers_error"] = f"{type(error).__name__}: {error}"
        say(f"[red]against peers failed[/red]: {error}")
    return results


async def kafka_ceilings(p: dict[str, Any]) -> dict[str, Any]:
    say("[bold]Kafka ceilings[/bold]: raw aiokafka producer, then Kafka's ProducerPerformance")
    settings = Settings()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.ceiling", f"{prefix}.perf"]
    admin = admin_client(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, settings.partitions, settings.replication_factor) for t in topics])
        await asyncio.sleep(1)  # let the leaders settle before producing
        argv = [
            sys.executable,
            "-m",
            "bench.ceiling",
            "--bootstrap",
            settings.kafka_bootstrap,
            "--topic",
            topics[0],
            "--partitions",
            str(settings.partitions),
            "--seconds",
            str(p["ceiling_seconds"]),
        ]
        done = await asyncio.to_thread(
            subprocess.run, argv, cwd=ROOT, capture_output=True, text=True, timeout=4 * p["ceiling_seconds"] + 60
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench.ceiling failed:\n{done.stderr[-3000:]}")
        raw = json.loads(done.stdout.strip().splitlines()[-1])
        say(
            f"  aiokafka: {raw['pipelined_msgs_per_s']:,.0f} msgs/s pipelined, "
            f"{raw['send_and_wait_64_msgs_per_s']:,.0f} msgs/s with 64 awaiting callers "
            f"({raw['record_bytes']} B records)"
        )
        perf = await asyncio.to_thread(
            ceiling.kafka_perf, settings.kafka_bootstrap, topics[1], p["perf_records"], raw["record_bytes"]
        )
        if perf is not None:
            say(f"  ProducerPerformance: {perf['msgs_per_s']:,.0f} msgs/s")
        else:
            say("  ProducerPerformance: not available (mvn or java missing, or it failed)")
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics(topics)
        await admin.close()
    return {"aiokafka": raw, "kafka_perf": perf}


async def restore(p: dict[str, Any]) -> dict[str, Any]:
    settings = await bench_settings()
    try:
        say(f"[bold]restore[/bold]: {p['aggregates']:,} aggregates onto <ns>.aggregates, then restore_partitions")
        result = await measure_restore(settings, p["aggregates"])
        say(
            f"  restored {result['aggregates']:,} in {result['seconds']:.2f}s "
            f"(reading alone {result['read_only_seconds']:.2f}s)"
        )
    finally:
        with contextlib.suppress(Exception):
            await delete_namespace_topics(settings)
        await drop_database(settings)
    say(f"  then {p['remembered']:,} remembered commands on one partition, restored")
    result["idempotency"] = memory = await idempotency_only(p["remembered"])
    say(f"  restored {memory['remembered']:,} in {memory['seconds']:.2f}s, {memory['bytes_per_entry']:.0f} bytes each")
    return result


async def startup() -> dict[str, Any]:
    say("[bold]startup[/bold]: a new processor's first decisions, then a takeover's")
    return await measure_startup(say)


async def privacy(p: dict[str, Any]) -> dict[str, Any]:
    say("[bold]sealing personal fields[/bold]: 64 clients off/on twice, then the ledger rebuilt plain and sealed")
    return await measure_privacy(p, say)


async def tracing(p: dict[str, Any]) -> dict[str, Any]:
    say("[bold]tracing[/bold]: 64 clients with OTLP export off, on and 10% sampled, twice")
    return await measure_tracing(p, say)


async def levers(p: dict[str, Any]) -> dict[str, Any]:
    say("[bold]levers[/bold]: lean command routes and the young GC threshold, 64 clients off/on twice each")
    return await measure_levers(p, say)


async def streams(p: dict[str, Any]) -> dict[str, Any]:
    say(f"[bold]streams[/bold]: {p['streams']:,} notification streams on one API process")
    return await measure_streams(p, say)


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError):
        memory = f"{int(open('/proc/meminfo').readline().split()[1]) / 1024 / 1024:.0f} GiB"
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def flatten(results: dict[str, Any]) -> dict[str, float | None]:
    def get(*path: str) -> float | None:
        node: Any = results
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return float(node) if isinstance(node, int | float) else None

    def median_of(ratio: str) -> float | None:
        rounds = (results.get("write_side") or {}).get("against_peers") or []
        return statistics.median(r[ratio] for r in rounds) if rounds else None

    el = ("write_side", "eventline")
    flat = {
        "commands_per_s_64": get(*el, "closed_64", "ok_per_s"),
        "commands_per_s_16": get(*el, "closed_16", "ok_per_s"),
        "commands_per_s_256": get(*el, "closed_256", "ok_per_s"),
        "half_capacity_rate_per_s": get(*el, "open_rate", "rate"),
        "p50_ms_at_half": get(*el, "open_rate", "latency", "p50_ms"),
        "p99_ms_at_half": get(*el, "open_rate", "latency", "p99_ms"),
        "visibility_p99_ms": get(*el, "visibility", "visibility", "p99_ms"),
        "projection_events_per_s": get("read_side", "projection_events_per_s"),
        "slowest_over_baseline": get("read_side", "slowest_over_baseline"),
        "rebuild_1m_s": get("read_side", "rebuild_1m_s"),
        "restore_100k_s": None,
        "idempotency_restore_1m_s": None,
        "idempotency_mib_per_1m": None,
        "crud_commands_per_s": get("write_side", "crud", "closed_64", "ok_per_s"),
        "crud_2w_commands_per_s": get("write_side", "crud_2w", "closed_64", "ok_per_s"),
        "eventsourcing_commands_per_s": get("write_side", "eventsourcing", "closed_64", "ok_per_s"),
        "eventsourcing_2w_commands_per_s": get("write_side", "eventsourcing_2w", "closed_64", "ok_per_s"),
        # The targets' ratios: medians over rounds measured back to back (write_side.against_peers).
        "over_crud_2w_back_to_back": median_of("over_crud_2w"),
        "over_eventsourcing_back_to_back": median_of("over_eventsourcing"),
        "aiokafka_ceiling_msgs_per_s": get("kafka", "aiokafka", "pipelined_msgs_per_s"),
        "kafka_perf_msgs_per_s": get("kafka", "kafka_perf", "msgs_per_s"),
        "cluster_commands_per_s_64": get("cluster", "cluster", "ok_per_s"),
        "cluster_ratio": get("cluster", "ratio"),
        "start_to_first_decision_s": get("startup", "start_to_first_decision_s"),
        "takeover_to_first_decision_s": get("startup", "takeover_to_first_decision_s"),
        "streams_open": get("streams", "streams"),
        "stream_delivery_p99_ms": get("streams", "loaded", "latency", "p99_ms"),
        "stream_delivery_p99_one_stream_ms": get("streams", "baseline", "latency", "p99_ms"),
        "stream_kib_each": None,
        "sealing_on_off_ratio_64": get("privacy", "on_off_ratio"),
        "rebuild_sealed_events_per_s": get("privacy", "rebuilds", "sealed", "events_per_s"),
        "rebuild_sealed_over_plain": get("privacy", "rebuilds", "sealed_over_plain"),
        "tracing_on_off_ratio_64": get("tracing", "on_off_ratio"),
        "tracing_sampled_off_ratio_64": get("tracing", "sampled_off_ratio"),
        "lean_routes_on_off_ratio_64": get("levers", "lean_routes", "ratio"),
        "gc_young_threshold_on_off_ratio_64": get("levers", "gc_young_threshold", "ratio"),
    }
    per_stream = get("streams", "bytes_per_stream")
    if per_stream is not None:
        flat["stream_kib_each"] = per_stream / 1024
    seconds, count = get("restore", "seconds"), get("restore", "aggregates")
    if seconds is not None and count:
        flat["restore_100k_s"] = seconds * 100_000 / count
    memory: dict[str, float] | None = (results.get("restore") or {}).get("idempotency")
    if memory:
        flat["idempotency_restore_1m_s"] = memory["seconds"] * 1_000_000 / memory["remembered"]
        flat["idempotency_mib_per_1m"] = memory["bytes_per_entry"] * 1_000_000 / 2**20
    assert list(flat) == list(FIGURES)
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=None, help="events for the rebuilds (default 1,000,000)")
    parser.add_argument(
        "--only",
        default="write,kafka,restore,read,cluster,startup,streams,privacy,tracing,levers",
        help="comma-separated sections to run",
    )
    args = parser.parse_args()
    p = plan(os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    if args.events or os.environ.get("BENCH_EVENTS"):
        p["events"] = args.events or int(os.environ["BENCH_EVENTS"])
    layout = os.environ.get("BENCH_LAYOUT", "split")
    only = set(args.only.split(","))
    started = time.monotonic()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "plan": p,
        "errors": {},
    }
    sections: list[tuple[str, str, Callable[[], Coroutine[Any, Any, dict[str, Any]]], bool]] = [
        ("write", "write_side", lambda: write(p, layout), False),
        ("kafka", "kafka", lambda: kafka_ceilings(p), True),
        ("restore", "restore", lambda: restore(p), True),  # uvloop, as a processor runs
        ("read", "read_side", lambda: read_side(p["events"]), False),
        ("cluster", "cluster", lambda: single_and_cluster(p, say), False),
        ("startup", "startup", lambda: startup(), False),
        ("streams", "streams", lambda: streams(p), True),  # uvloop, as the API runs
        ("privacy", "privacy", lambda: privacy(p), False),
        ("tracing", "tracing", lambda: tracing(p), False),
        ("levers", "levers", lambda: levers(p), False),
    ]
    for name, key, section, on_uvloop in sections:
        if name not in only:
            continue
        try:
            results[key] = uvloop.run(section()) if on_uvloop else asyncio.run(section())
        except Exception as error:  # a broken section must not hide the others' figures
            results["errors"][key] = f"{type(error).__name__}: {error}"
            say(f"[red]{key} failed[/red]: {error}")
            traceback.print_exc()
    results["seconds"] = time.monotonic() - started
    flat = flatten(results)
    results.update(flat)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if only >= {name for name, *_ in sections}:
        (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
        write_markdown(results, ROOT / "BENCHMARKS.md")
    else:  # a partial run must not replace the figures of a whole one
        partial = RESULTS / f"only-{'-'.join(sorted(only))}.json"
        partial.write_text(json.dumps(results, indent=2) + "\n")
        say(f"partial run: figures in {partial.relative_to(ROOT)}; BENCHMARKS.md left as it was")
    table = Table(title=f"Eventline benchmarks ({results['seconds']:.0f}s{', QUICK' if p['quick'] else ''})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for key, value in flat.items():
        table.add_row(key, "—" if value is None else f"{value:,.1f}", FIGURES[key])
    console.print(table)
    if results["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
