"""Blue/green rebuilds while commands keep arriving and queries keep being served."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Settings
from app.db import create_engine
from app.eventstore.processor import run_processor
from projections.accounts import PROJECTION as ACCOUNTS
from projections.base import Message, Projection
from projections.projector import run_projector
from projections.rebuild import RebuildRefused, rebuild, rebuild_together
from projections.registry import PROJECTIONS
from projections.runner import lock_key
from projections.tables import accounts
from tests.conftest import ROOT
from tests.support import api_client, environment, fresh_namespace, read_topic
from tests.waiting import eventually

WORKERS = {"processor": run_processor, "projector": run_projector}


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings, own_database=True)


async def make_history(client: httpx.AsyncClient, accounts_count: int = 10, moves: int = 8) -> list[str]:
    ids = []
    for _ in range(accounts_count):
        opened = await client.post("/accounts", json={"owner": "History", "currency": "EUR"})
        ids.append(opened.json()["aggregate_id"])
    for n in range(moves):
        await asyncio.gather(*(client.post(f"/accounts/{a}/deposits", json={"amount": 10 + n}) for a in ids))
    return ids


async def all_caught_up(client: httpx.AsyncClient) -> bool:
    views = (await client.get("/projections")).json()
    return all(view["lag"] == 0 for view in views)


async def test_rebuild_under_load_swaps_without_failing_a_query_and_equals_a_fresh_replay(ns: Settings) -> None:
    engine = create_engine(ns)
    async with api_client(ns, workers=WORKERS) as client:
        ids = await make_history(client)
        stop = asyncio.Event()
        queries: Counter[int] = Counter()

        async def write() -> None:
            n = 0
            while not stop.is_set():
                await client.post(f"/accounts/{ids[n % len(ids)]}/deposits", json={"amount": 1})
                n += 1

        async def read() -> None:
            n = 0
            while not stop.is_set():
                account_id = ids[n % len(ids)]
                for path in (
                    f"/accounts/{account_id}",
                    f"/accounts/{account_id}/transactions?limit=5",
                    f"/events?aggregate_id={account_id}&limit=5",
                ):
                    queries[(await client.get(path)).status_code] += 1
                n += 1

        load = [asyncio.create_task(write()), asyncio.create_task(read())]
        try:
            for name in PROJECTIONS:
                report = await rebuild(ns, engine, PROJECTIONS[name], verify=True)
                assert report.swapped and not report.differs, report
        finally:
            stop.set()
            await asyncio.gather(*load)
        assert set(queries) == {200}, queries
        await eventually(lambda: all_caught_up(client), True, timeout=60)
        # Now the live tables (rebuilt, then kept up live) must equal a fresh replay from offset 0:
        # one replay for the three, shared by partition between two processes.
        together = [PROJECTIONS[name] for name in ("accounts", "ledger", "event_log")]
        shown: list[tuple[int, int]] = []
        for report in await rebuild_together(
            ns, engine, together, verify=True, workers=2, progress=lambda done, total: shown.append((done, total))
        ):
            assert [t.differs for t in report.tables] == [False] * len(report.tables), report
            assert report.tables[0].live_rows > 0 and report.events > 0
        assert shown and shown[-1][0] == shown[-1][1] > 0, shown
    await engine.dispose()


def rebuild_processes(parent: int | None = None) -> list[int]:
    """Live rebuild workers started by `parent` (this process by default), or by anyone with `parent=0`."""
    parent = os.getpid() if parent is None else parent
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            state, ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
            if (
                state != "Z"
                and parent in (0, int(ppid))
                and b"projections.rebuild_worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ):
                found.append(int(pid))
    return found


async def test_cancelling_a_rebuild_in_processes_stops_them_and_keeps_the_live_tables(ns: Settings) -> None:
    engine = create_engine(ns)
    async with api_client(ns, workers=WORKERS) as client, engine.connect() as blocker:
        ids = await make_history(client, accounts_count=4, moves=2)
        await eventually(lambda: all_caught_up(client), True, timeout=60)
        before = (await client.get(f"/accounts/{ids[0]}")).json()
        # Holding the rebuild's lock keeps its processes from ever finishing a batch.
        await blocker.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key("accounts@rebuild")})
        replaying = asyncio.create_task(rebuild_together(ns, engine, [PROJECTIONS["accounts"]], workers=2))

        async def started() -> int:
            return len(rebuild_processes())

        await eventually(started, 2)
        replaying.cancel()  # what Ctrl-C does
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(replaying, timeout=10)
        assert rebuild_processes() == []
        assert (await client.get(f"/accounts/{ids[0]}")).json() == before
    await engine.dispose()


async def test_killing_a_rebuild_takes_its_processes_with_it(ns: Settings) -> None:
    engine = create_engine(ns)
    async with api_client(ns, workers=WORKERS) as client, engine.connect() as blocker:
        await make_history(client, accounts_count=4, moves=2)
        await eventually(lambda: all_caught_up(client), True, timeout=60)
        await blocker.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key("accounts@rebuild")})
        command = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv/bin/eventline"),
            "rebuild",
            "accounts",
            "--workers",
            "2",
            env=environment(ns),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

        async def started() -> int:
            return len(rebuild_processes(command.pid))

        await eventually(started, 2)
        workers = rebuild_processes(command.pid)
        command.kill()  # no chance to clean up
        await command.wait()

        async def still_running() -> list[int]:  # (a worker killed before it started counts too)
            return [pid for pid in rebuild_processes(0) if pid in workers]

        await eventually(still_running, [], timeout=10)
    await engine.dispose()


async def test_only_registered_projections_are_rebuilt_in_processes(ns: Settings) -> None:
    engine = create_engine(ns)
    with pytest.raises(ValueError, match="registered"):
        await rebuild_together(ns, engine, [doubled()], workers=2)
    await engine.dispose()


def doubled() -> Projection:
    """The accounts projection after a (wrong) code change: balances come out doubled."""

    async def apply(connection: AsyncConnection, messages: Sequence[Message]) -> None:
        await ACCOUNTS.apply(connection, messages)
        ids = {m.event.aggregate_id for m in messages}
        if ids:
            await connection.execute(
                accounts.update().where(accounts.c.account_id.in_(ids)).values(balance=accounts.c.balance * 2)
            )

    return Projection(name="accounts", tables=ACCOUNTS.tables, apply=apply)


async def test_verify_refuses_to_swap_a_rebuild_that_differs(ns: Settings) -> None:
    engine = create_engine(ns)
    async with api_client(ns, workers=WORKERS) as client:
        ids = await make_history(client, accounts_count=4, moves=2)
        await eventually(lambda: all_caught_up(client), True, timeout=60)
        before = (await client.get(f"/accounts/{ids[0]}")).json()
        with pytest.raises(RebuildRefused) as refused:
            await rebuild(ns, engine, doubled(), verify=True)
        [table] = refused.value.report.tables
        assert (table.table, table.changed, table.only_live, table.only_rebuilt) == ("accounts", 4, 0, 0)
        assert (await client.get(f"/accounts/{ids[0]}")).json() == before
        views = {v["name"]: v for v in (await client.get("/projections")).json()}
        assert views["accounts"]["rebuild"]["state"] == "refused"
    await engine.dispose()


async def test_an_interrupted_rebuild_leaves_the_live_tables_serving(ns: Settings) -> None:
    engine = create_engine(ns)
    async with api_client(ns, workers=WORKERS) as client:
        ids = await make_history(client, accounts_count=20, moves=10)
        await eventually(lambda: all_caught_up(client), True, timeout=60)
        before = (await client.get(f"/accounts/{ids[0]}")).json()
        replaying = asyncio.create_task(rebuild(ns, engine, PROJECTIONS["event_log"]))

        async def rebuild_started() -> bool:
            async with engine.connect() as connection:
                found = await connection.execute(select(accounts.c.account_id).limit(1))
                return found.first() is not None and not replaying.done()

        await eventually(rebuild_started, True)
        replaying.cancel()  # what Ctrl-C does
        with contextlib.suppress(asyncio.CancelledError):
            await replaying
        assert (await client.get(f"/accounts/{ids[0]}")).json() == before
        page = (await client.get(f"/events?aggregate_id={ids[0]}&limit=100")).json()
        assert len(page["items"]) == 11
        # A later rebuild starts over and completes.
        report = await rebuild(ns, engine, PROJECTIONS["event_log"], verify=True)
        assert report.swapped and not report.differs
    await engine.dispose()


async def index_definitions(engine: AsyncEngine, tables: Sequence[str]) -> set[tuple[str, str]]:
    async with engine.connect() as connection:
        found = await connection.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(:t)"),
            {"t": list(tables)},
        )
        return {(row.indexname, row.indexdef) for row in found}


async def test_insert_only_read_models_are_indexed_after_the_replay_as_the_migrations_made_them(ns: Settings) -> None:
    """event_log and ledger replay into tables without indexes, indexed once the replay is done:
    the swapped-in tables carry every index of the live ones, under the same names, and equal a
    fresh replay even where the log holds an event twice (the live tables kept the first)."""
    engine = create_engine(ns)
    insert_only = [PROJECTIONS["event_log"], PROJECTIONS["ledger"]]
    assert all(p.insert_only for p in insert_only)
    async with api_client(ns, workers=WORKERS) as client:
        await make_history(client, accounts_count=4, moves=3)
        deposit = next(r for r in await read_topic(ns, "events") if b'"FundsDeposited"' in (r.value or b""))
        producer = AIOKafkaProducer(bootstrap_servers=ns.kafka_bootstrap)
        await producer.start()
        try:  # the same event a second time, as a foreign producer could write it
            topic = ns.topic("events")
            await producer.send_and_wait(topic, deposit.value, key=deposit.key, partition=deposit.partition)
        finally:
            await producer.stop()
        await eventually(lambda: all_caught_up(client), True, timeout=60)
        tables = [table.name for p in insert_only for table in p.tables]
        before = await index_definitions(engine, tables)
        assert len(before) == 5  # event_log: its key and three more; account_ledger: its key
        reports = await rebuild_together(ns, engine, insert_only, verify=True)
        assert [(r.swapped, r.differs) for r in reports] == [(True, False), (True, False)]
        assert await index_definitions(engine, tables) == before
    await engine.dispose()
