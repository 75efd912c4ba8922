"""Write side: deposits over HTTP, Eventline next to a CRUD service and the `eventsourcing` library.

Every service runs in its own processes on loopback, and the same load
generator (bench/load.py, a separate process) drives each of them on the same
workload: a deposit of 1 to one of 1,000 accounts opened beforehand.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from app.config import Settings
from bench import oncpu, profile
from bench.cpu import CpuMeter, infra_pids
from bench.drain import drained
from bench.processes import (
    VENV_BIN,
    Service,
    eventline_environment,
    free_port,
    open_accounts,
    run_load,
    run_wrk,
    wait_http,
)
from bench.setup import bench_settings, create_database, delete_namespace_topics, drop_database, drop_database_url

Say = Callable[[str], None]


@asynccontextmanager
async def running(services: list[Service], ready_url: str) -> AsyncIterator[None]:
    try:
        for service in services:
            service.start()
        await wait_http(ready_url, services)
        yield
    finally:
        for service in reversed(services):
            service.stop()


@asynccontextmanager
async def serving_eventline(
    settings: Settings, accounts: int, open_timeout: float = 90, api: list[str] | None = None
) -> AsyncIterator[tuple[str, Path, list[Service]]]:
    """Processor, projector and API as processes on `settings`' namespace, with `accounts` opened:
    (base URL, the accounts file, the services). `api` replaces `eventline api`'s command line.
    The namespace's topics and database go afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    services = eventline_services(settings, port, "split")
    if api is not None:
        services[-1].argv = api
    accounts_file = Path(tempfile.mkstemp(prefix="bench-accounts-", suffix=".txt")[1])
    try:
        async with running(services, f"{base}/health/ready"):
            await open_accounts(base, accounts, accounts_file, timeout=open_timeout)
            yield base, accounts_file, services
    finally:
        await asyncio.to_thread(accounts_file.unlink, missing_ok=True)
        with contextlib.suppress(Exception):
            await delete_namespace_topics(settings)
        await drop_database(settings)


async def closed_loops_with_cpu(
    label: str, base: str, accounts: Path, services: list[Service], concurrency: tuple[int, ...] = (16, 64)
) -> dict[str, Any]:
    """For an A/B: a 10 s closed loop per client count, with commands/s, latency and the CPU
    milliseconds one command cost each process (printed as `label, N clients: …`)."""
    figures: dict[str, Any] = {}
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
        }
        print(
            f"{label}, {clients} clients: {done:.0f} commands/s, "
            f"p50 {run['latency']['p50_ms']:.1f} ms, p99 {run['latency']['p99_ms']:.1f} ms; "
            f"CPU ms per command {per_command}, total {sum(per_command.values()):.2f}",
            flush=True,
        )
    return figures


async def alternated(
    label: str, variants: dict[str, dict[str, Any]], accounts: int, rounds: int = 2
) -> dict[str, list[dict[str, Any]]]:
    """For an A/B inside `make bench`: each variant (settings overrides) in turn, `rounds` times over
    (off, on, off, on, …), on a fresh namespace, drained, then a 64-client closed loop: a drift of the
    shared machine's speed shows as a difference between the rounds, not as the lever's effect."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, overrides in variants.items():
            settings = await bench_settings(**overrides)
            async with serving_eventline(settings, accounts) as (base, accounts_file, services):
                await drained(settings, base)
                figures = await closed_loops_with_cpu(f"  {label} {name}", base, accounts_file, services, (64,))
                runs[name].append(figures["closed_64"])
    return runs


async def against_peers(
    accounts: int, plan: dict[str, Any], say: Say, workers: int, rounds: int = 2
) -> list[dict[str, float]]:
    """The two ratios the targets are about, measured as A/Bs are: Eventline (fresh namespace,
    drained), the CRUD peer with `workers` uvicorn workers and eventsourcing in one process, one
    right after the other at 64 clients, `rounds` times. Each round's ratios compare three
    measurements a minute apart; the section's single figures are minutes apart, and this shared
    machine's speed drifts by more than the targets' margins in that time (BENCHMARKS.md)."""
    found = []
    for _ in range(rounds):
        [ours] = (await alternated("against peers: eventline", {"as deployed": {}}, accounts, rounds=1))["as deployed"]
        crud = (await peer("crud", accounts, plan, say, workers=workers))["closed_64"]
        es = (await peer("eventsourcing", accounts, plan, say))["closed_64"]
        found.append(
            {
                "eventline_per_s": ours["commands_per_s"],
                "crud_2w_per_s": crud["ok_per_s"],
                "eventsourcing_per_s": es["ok_per_s"],
                "over_crud_2w": ours["commands_per_s"] / crud["ok_per_s"],
                "over_eventsourcing": ours["commands_per_s"] / es["ok_per_s"],
            }
        )
    return found


def ratios(runs: dict[str, list[dict[str, Any]]], over: str, of: str) -> list[float]:
    """Round by round, commands/s of `over` divided by those of `of`."""
    return [b["commands_per_s"] / a["commands_per_s"] for a, b in zip(runs[of], runs[over], strict=True)]


def eventline_services(settings: Settings, port: int, layout: str) -> list[Service]:
    env = eventline_environment(settings, EVENTLINE_API_PORT=str(port))
    binary = str(VENV_BIN / "eventline")
    if layout == "run":
        return [Service("eventline-run", [binary, "run"], env)]
    # Processor and projector first, so the API's first command finds its partition owned.
    return [Service(f"eventline-{name}", [binary, name], env) for name in ("processor", "projector", "api")]


async def eventline(accounts: int, plan: dict[str, Any], layout: str, say: Say) -> dict[str, Any]:
    settings = await bench_settings()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    services = eventline_services(settings, port, layout)
    results: dict[str, Any] = {"layout": layout}
    accounts_file = Path(tempfile.mkstemp(prefix="bench-accounts-", suffix=".txt")[1])
    try:
        async with running(services, f"{base}/health/ready"):
            say(f"  eventline ({layout}): opening {accounts:,} accounts …")
            await open_accounts(base, accounts, accounts_file)
            for clients in plan["concurrency"]:
                before = await drained(settings, base)
                meter = CpuMeter({s.name.removeprefix("eventline-"): s.pid for s in services} | infra_pids())
                meter.start()
                run = await asyncio.to_thread(
                    closed_loop,
                    base,
                    accounts_file,
                    concurrency=clients,
                    warmup=plan["warmup"],
                    duration=plan["duration"],
                )
                run["cpu"] = meter.stop()
                run["drained"] = before
                results[f"closed_{clients}"] = run
                say(
                    f"  eventline, {clients} clients: {run['ok_per_s']:,.0f} commands/s, "
                    f"p99 {run['latency']['p99_ms']:.1f} ms, generator cpu {run['generator_cpu']:.2f}"
                )

            async def open_loop(rate: float, visibility_every: int = 0) -> dict[str, Any]:
                before = await drained(settings, base)
                left = before["lag_at_end_of_previous"]
                say(f"  drained in {before['waited_s']} s (lag left by the previous phase: {left})")
                meter = CpuMeter({s.name.removeprefix("eventline-"): s.pid for s in services} | infra_pids())
                meter.start()
                run: dict[str, Any] = await asyncio.to_thread(
                    run_load,
                    base,
                    accounts_file,
                    mode="open",
                    rate=rate,
                    visibility_every=visibility_every,
                    warmup=plan["warmup"],
                    duration=plan["duration"],
                )
                run["cpu"] = meter.stop()
                run["waiting_for_a_core"] = meter.waiting
                run["cpu_pressure"] = meter.pressure
                run["drained"] = before
                return run

            # Half of the 64-client capacity just measured: a load carried with room to spare, so
            # latency is the path's own and not a queue's (a fixed rate past capacity measures the queue).
            rate = plan["rate"] or float(max(10, round(results["closed_64"]["ok_per_s"] / 2)))
            run = results["open_rate"] = await open_loop(rate)
            say(
                f"  eventline at {rate:.0f}/s: p50 {run['latency']['p50_ms']:.1f} ms, "
                f"p99 {run['latency']['p99_ms']:.1f} ms ({run['ok_per_s']:,.0f} ok/s)"
            )
            run = results["visibility"] = await open_loop(rate, plan["visibility_every"])
            say(
                f"  visibility at {rate:.0f}/s: p50 {run['visibility']['p50_ms']:.1f} ms, "
                f"p99 {run['visibility']['p99_ms']:.1f} ms ({run['visibility']['samples']} samples)"
            )
            run = results["light"] = await open_loop(plan["light_rate"], plan["visibility_every"])
            say(
                f"  at {plan['light_rate']:.0f}/s: p99 {run['latency']['p99_ms']:.1f} ms, "
                f"visibility p99 {run['visibility']['p99_ms']:.1f} ms"
            )
            if plan["profile"]:
                results["profile"] = await profile_eventline(services, base, accounts_file, plan, say)
    finally:
        await asyncio.to_thread(accounts_file.unlink, missing_ok=True)
        with contextlib.suppress(Exception):
            await delete_namespace_topics(settings)
        await drop_database(settings)
    return results


async def profile_eventline(
    services: list[Service], base: str, accounts_file: Path, plan: dict[str, Any], say: Say
) -> dict[str, Any]:
    """A separate 64-client run with py-spy attached to each Eventline process."""
    seconds = plan["duration"]
    recordings = {s.name: profile.start_recording(s.pid, s.name, plan["warmup"] + seconds) for s in services}
    if not any(recordings.values()):
        say("  profile: py-spy not available, skipped")
        return {}
    on_cpu = {s.name: oncpu.start_recording(s.pid, s.name, plan["warmup"] + seconds) for s in services}
    run = await asyncio.to_thread(
        run_load, base, accounts_file, concurrency=64, warmup=plan["warmup"], duration=seconds
    )
    found: dict[str, Any] = {"commands_per_s_while_profiled": run["ok_per_s"]}
    for name, recording in recordings.items():
        summary = profile.finish_recording(recording)
        if summary is not None:
            found[name] = summary
            summary["on_cpu"] = oncpu.finish_recording(on_cpu[name])
    say(
        f"  profiled {', '.join(k for k in found if k.startswith('eventline'))} "
        f"({run['ok_per_s']:,.0f} commands/s while sampled)"
    )
    return found


async def peer(name: str, accounts: int, plan: dict[str, Any], say: Say, workers: int = 1) -> dict[str, Any]:
    """The CRUD service or the eventsourcing service, on a database of its own, at 64 clients.

    `workers` > 1 serves it with that many uvicorn processes: how one would deploy it on a
    machine with as many cores."""
    url = await create_database(f"eventline_bench_{name}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    parts = make_url(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLINE_")}
    env |= {
        "BENCH_DATABASE_URL": url,
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(parts.database),
        "POSTGRES_HOST": str(parts.host),
        "POSTGRES_PORT": str(parts.port),
        "POSTGRES_USER": str(parts.username),
        "POSTGRES_PASSWORD": str(parts.password),
        "POSTGRES_POOL_SIZE": "20",
        "POSTGRES_MAX_OVERFLOW": "20",
    }
    module = {"crud": "bench.crud_service", "eventsourcing": "bench.es_service"}[name]
    argv = [sys.executable, "-m", module, "--port", str(port)] + (["--workers", str(workers)] if workers > 1 else [])
    service = Service(f"peer-{name}", argv, env)
    accounts_file = Path(tempfile.mkstemp(prefix="bench-accounts-", suffix=".txt")[1])
    results: dict[str, Any] = {}
    try:
        async with running([service], f"{base}/openapi.json"):
            await open_accounts(base, accounts, accounts_file)
            meter = CpuMeter({"service": service.pid} | infra_pids())
            meter.start()
            run = await asyncio.to_thread(
                closed_loop, base, accounts_file, concurrency=64, warmup=plan["warmup"], duration=plan["duration"]
            )
            run["cpu"] = meter.stop()
            results["closed_64"] = run
            label = name if workers == 1 else f"{name} ({workers} workers)"
            say(
                f"  {label}, 64 clients: {run['ok_per_s']:,.0f} commands/s, p99 {run['latency']['p99_ms']:.1f} ms, "
                f"generator cpu {run['generator_cpu']:.2f}"
            )
    finally:
        await asyncio.to_thread(accounts_file.unlink, missing_ok=True)
        await drop_database_url(url)
    return results


def closed_loop(base_url: str, accounts: Path, **kwargs: Any) -> dict[str, Any]:
    """Closed-loop throughput: wrk when installed (`make bench` installs it), else the Python generator."""
    if shutil.which("wrk"):
        return run_wrk(base_url, accounts, **kwargs)
    return run_load(base_url, accounts, **kwargs)
