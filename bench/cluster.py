"""The write side on a three-broker cluster beside the single node, in the same run: what replication costs.

The cluster is the one the tests use (`scripts/infra.py up cluster`: three KRaft
nodes on loopback, replication 3, min.insync.replicas 2); this section starts it
and destroys it again. Both runs are the same measurement back to back, a
processor, a projector and an API as separate processes, 64 closed-loop
clients, so their ratio is read on one machine in one state. All three brokers
share the same two cores with everything else, so the ratio is a floor: a real
cluster gives each broker its own machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from app.config import Settings
from bench.cpu import LOCAL, CpuMeter, infra_pids
from bench.paths import ROOT
from bench.setup import bench_settings
from bench.write_side import closed_loop, serving_eventline

# Where scripts/kafka_cluster.py starts the three brokers: EVENTLINE_CLUSTER_PORT and the two ports after it.
CLUSTER_PORT = int(os.environ.get("EVENTLINE_CLUSTER_PORT", "19192"))
BOOTSTRAP = ",".join(f"127.0.0.1:{CLUSTER_PORT + 2 * n}" for n in range(3))
Say = Callable[[str], None]


def infra(action: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "infra.py"), action, "cluster"], check=True, timeout=300)


def cluster_pids() -> dict[str, int]:
    found = {}
    for node in (1, 2, 3):
        with contextlib.suppress(OSError, ValueError):
            found[f"broker-{node}"] = int((LOCAL / "kafka-cluster" / f"node-{node}" / "kafka.pid").read_text())
    return found


async def closed_64(settings: Settings, plan: dict[str, Any], say: Say, label: str, brokers: dict[str, int]) -> Any:
    async with serving_eventline(settings, plan["accounts"], open_timeout=180) as (base, accounts, services):
        meter = CpuMeter({s.name.removeprefix("eventline-"): s.pid for s in services} | brokers)
        meter.start()
        run = await asyncio.to_thread(
            closed_loop, base, accounts, concurrency=64, warmup=plan["warmup"], duration=plan["duration"]
        )
        run["cpu"] = meter.stop()
    say(f"  {label}, 64 clients: {run['ok_per_s']:,.0f} commands/s, p99 {run['latency']['p99_ms']:.1f} ms")
    return run


async def single_and_cluster(plan: dict[str, Any], say: Say) -> dict[str, Any]:
    say("[bold]cluster[/bold]: the same 64-client run on the single node, then on three brokers (replication 3)")
    single = await closed_64(await bench_settings(), plan, say, "single node", infra_pids())
    await asyncio.to_thread(infra, "up")
    try:
        settings = await bench_settings(kafka_bootstrap=BOOTSTRAP, replication_factor=3, min_insync_replicas=2)
        pids = cluster_pids() | {k: v for k, v in infra_pids().items() if k == "postgres"}
        clustered = await closed_64(settings, plan, say, "cluster", pids)
    finally:
        await asyncio.to_thread(infra, "destroy")
    return {
        "single_node": single,
        "cluster": clustered,
        "ratio": clustered["ok_per_s"] / single["ok_per_s"] if single["ok_per_s"] else None,
    }
