"""The system a fault round runs: real processes, the retrying load, and the verdict after it.

Shared by the single-node fault suite (tests/faults/test_faults.py) and the cluster's
rounds (tests/cluster/test_cluster.py). Figures land in artifacts/reliability.json.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from app.config import Settings
from app.eventstore.partitioner import partition_for
from tests.conftest import ROOT
from tests.faults.invariants import check_invariants, settle
from tests.faults.load import MixedLoad
from tests.support import ApiProcess, Process, free_port, wait_for_log
from tests.waiting import eventually

REPORT = ROOT / "artifacts" / "reliability.json"


@dataclass
class System:
    ns: Settings
    client: httpx.AsyncClient
    processes: dict[str, list[Process]] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)
    conversations: list[tuple[str, str]] = field(default_factory=list)
    # Settings a kind of process runs with over `ns`'s: its own Kafka principal, on the secured broker.
    overrides: dict[str, dict[str, object]] = field(default_factory=dict)

    def settings_for(self, kind: str) -> Settings:
        return self.ns.model_copy(update=self.overrides.get(kind, {}))

    def start(self, kind: str) -> Process:
        process = Process(self.settings_for(kind), kind).start()
        self.processes.setdefault(kind, []).append(process)
        return process

    def kill_and_restart(self, kind: str, index: int = 0) -> None:
        self.processes[kind][index].kill()
        self.processes[kind][index] = Process(self.settings_for(kind), kind).start()

    def exited(self) -> list[str]:
        """The processes that ended though no fault was meant to end them, with their last words."""
        return [
            f"{kind}[{n}] exited with {process.popen.returncode}:\n" + "\n".join(process.log().splitlines()[-15:])
            for kind, processes in self.processes.items()
            for n, process in enumerate(processes)
            if process.popen is not None and process.popen.poll() is not None
        ]

    def stop_all(self) -> None:
        for processes in self.processes.values():
            for process in processes:
                process.stop()


@asynccontextmanager
async def behind_two_apis(
    ns: Settings, kinds: Iterable[str], overrides: dict[str, dict[str, object]] | None = None
) -> AsyncIterator[tuple[System, list[ApiProcess], httpx.AsyncClient]]:
    """The processes `kinds` and two real `eventline api` (uvicorn over TCP): the system, the API
    processes, and a client of the first one (`system.client` speaks to the second). `overrides`
    are settings by kind of process ("api" for both APIs)."""
    overrides = overrides or {}
    apis = [ApiProcess(ns.model_copy(update={**overrides.get("api", {}), "api_port": free_port()})) for _ in range(2)]
    async with (
        httpx.AsyncClient(base_url=apis[0].url, timeout=30) as first,
        httpx.AsyncClient(base_url=apis[1].url, timeout=30) as second,
    ):
        system = System(ns, second, overrides=overrides)
        for kind in kinds:
            system.start(kind)
        try:
            for api in apis:
                await api.start()
            yield system, apis, first
        finally:
            for api in apis:
                if api.process is not None:
                    api.process.stop()
            system.stop_all()


async def seed(system: System) -> None:
    client = system.client
    tokens = []
    for _ in range(12):
        opened = await client.post("/accounts", json={"owner": "Fault", "currency": "EUR"}, timeout=60)
        assert opened.status_code in (201, 202), opened.text
        account_id = opened.json()["aggregate_id"]
        funded = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 5000})
        system.accounts.append(account_id)
        tokens.append(funded.json().get("position", ""))
    for a, b in zip(system.accounts[::2], system.accounts[1::2], strict=True):
        started = await client.post(
            "/conversations",
            json={"participants": [a, b]},
            headers={"X-Consistent-With": ",".join(filter(None, tokens))},
        )
        assert started.status_code == 201, started.text
        system.conversations.append((started.json()["conversation_id"], a))
    # Posting checks the conversation in its read model: wait until it is there.
    for conversation_id, _ in system.conversations:

        async def known(conversation_id: str = conversation_id) -> int:
            return (await client.get(f"/conversations/{conversation_id}/messages")).status_code

        await eventually(known, 200)


async def under_load(system: System, faults: Callable[[], Any]) -> MixedLoad:
    load = MixedLoad(system.client, list(system.accounts), list(system.conversations))
    running = asyncio.create_task(load.run())
    try:
        await faults()
    finally:
        load.stopping.set()
        await running
    return load


async def verify(system: System, name: str, load: MixedLoad, rounds: int, **extra: Any) -> None:
    assert not (exited := system.exited()), "\n\n".join(exited)
    await settle(system.ns, load.acknowledged)
    verdict = await check_invariants(system.ns, load.acknowledged, load.operations)
    statuses = load.statuses()
    assert not [s for s in statuses if s >= 500 and s != 503], statuses
    outage = [a.seconds for a in load.answers if a.status == 503]
    record(
        name,
        {
            "rounds": rounds,
            "requests": len(load.answers),
            "retries": load.retries(),
            "statuses": dict(statuses),
            "max_503_seconds": max(outage, default=0.0),
            **asdict(verdict),
            **extra,
        },
    )


def record(name: str, figures: dict[str, Any]) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report[name] = {**figures, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    REPORT.write_text(json.dumps(report, indent=2) + "\n")


async def pause_past_its_session(system: System, victim: Process, survivor: Process) -> int:
    """One SIGSTOP round: 1 when the woken zombie's write was refused as fenced, 0 when it had
    been idle at the pause and stepped down without writing."""
    seen, woken = len(survivor.log()), len(victim.log())
    burst = [asyncio.create_task(system.client.post(f"/accounts/{a}/deposits", json={"amount": 1}))
             for a in accounts_of(system, victim)]  # fmt: skip
    await asyncio.sleep(0.02)  # not a wait for a condition: it places the pause inside the victim's batch
    victim.pause()
    everything = re.escape(f"owning partitions {list(range(system.ns.partitions))}")
    try:  # past the 6 s session the group moves the victim's partitions to the survivor
        await wait_for_log(survivor, everything, after=seen, timeout=60)
    finally:
        victim.resume()
    try:
        await wait_for_log(victim, "fenced by a newer owner", after=woken, timeout=10)
    except AssertionError:
        return 0
    finally:
        await asyncio.gather(*burst)
    return 1


def accounts_of(system: System, process: Process) -> list[str]:
    """The seeded accounts on the partitions `process` last said it owns."""
    owned = re.findall(r"owning partitions \[([0-9, ]*)\]", process.log())
    partitions = {int(p) for p in owned[-1].split(",") if p.strip()} if owned else set()
    return [a for a in system.accounts if partition_for(a, system.ns.partitions) in partitions]
