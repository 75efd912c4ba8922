"""Blue/green rebuild: replay every event into fresh tables, compare, swap atomically.

1. Copies of the projection's tables are created empty in the schema
   `eventline_rebuild` (those of an insert-only projection without indexes,
   built once the replay is done: projections/deferred_indexes.py); the same projection code fills them through
   SQLAlchemy's `schema_translate_map`, from offset 0, under the checkpoint
   name `<projection>@rebuild`. The live projection keeps serving meanwhile.
   Several projections rebuilt together share one replay (one runner), and
   that replay can be shared among processes by partition
   (projections/rebuild_worker.py): each partition's checkpoints are its own.
2. One transaction then takes the projection's exclusive advisory lock (live
   batches hold it shared, so none is in flight), brings the rebuilt copy up to
   the live one's checkpoints, and with `verify` also the live copy up to the
   rebuilt one's, to compare them (row counts and per-key row hashes). Unless
   `verify` found differences, it moves the live tables to
   `eventline_retired` and the rebuilt ones into `public`, and hands the
   rebuilt checkpoints to the live projection. DDL is transactional in
   PostgreSQL, so an interruption at any point leaves the live tables as they
   were, and a later rebuild starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import delete, func, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Settings
from app.eventstore.kafka import connection
from app.privacy.runtime import start_key_store
from projections import checkpoints, deferred_indexes
from projections.base import Message, Projection, decode_record
from projections.checkpoints import Slot
from projections.personal import opened
from projections.registry import PROJECTIONS
from projections.runner import Member, ProjectionRunner, RunnerOptions, lock_key
from projections.status import ends_of
from projections.tables import checkpoints as checkpoint_table
from projections.tables import projection_status

REBUILD_SCHEMA = "eventline_rebuild"
RETIRED_SCHEMA = "eventline_retired"

Progress = Callable[[int, int], None]  # (messages applied so far, messages in total)
Ends = dict[Slot, int]  # where a replay stops, per partition

PROGRESS_EVERY_S = 0.5


@dataclass
class TableDiff:
    table: str
    live_rows: int
    rebuilt_rows: int
    only_live: int
    only_rebuilt: int
    changed: int

    @property
    def differs(self) -> bool:
        return bool(self.only_live or self.only_rebuilt or self.changed)


@dataclass
class RebuildReport:
    projection: str
    events: int
    seconds: float
    checkpoints: dict[str, int]
    tables: list[TableDiff] = field(default_factory=list)
    swapped: bool = False
    # Where `seconds` went: the replay (shared by the projections rebuilt together), building this
    # projection's deferred indexes, and its catch-up, compare and swap.
    replay_seconds: float = 0.0
    index_seconds: float = 0.0
    swap_seconds: float = 0.0

    @property
    def differs(self) -> bool:
        return any(t.differs for t in self.tables)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class RebuildRefused(RuntimeError):
    """`verify` found differences: the live tables were left in place."""

    def __init__(self, report: RebuildReport) -> None:
        super().__init__(f"{report.projection}: rebuilt tables differ from the live ones; not swapped")
        self.report = report


def rebuild_name(projection: Projection) -> str:
    return f"{projection.name}@rebuild"


async def rebuild(
    settings: Settings,
    engine: AsyncEngine,
    projection: Projection,
    *,
    verify: bool = False,
    progress: Progress | None = None,
) -> RebuildReport:
    """Rebuild one projection; RebuildRefused when `verify` found differences."""
    [report] = await rebuild_together(settings, engine, [projection], verify=verify, progress=progress)
    if not report.swapped:
        raise RebuildRefused(report)
    return report


async def rebuild_together(
    settings: Settings,
    engine: AsyncEngine,
    projections: Sequence[Projection],
    *,
    verify: bool = False,
    progress: Progress | None = None,
    workers: int = 1,
) -> list[RebuildReport]:
    """Rebuild several projections from one replay: every event is read and decoded once.

    With `workers` above 1 the partitions are shared among that many processes
    (projections/rebuild_worker.py), which then replay side by side; only
    registered projections can be rebuilt so. Each projection is then compared
    (with `verify`) and swapped on its own; a refused one keeps its live tables
    and is reported with `swapped` false.
    """
    started, began = time.monotonic(), time.time()
    for projection in projections:
        await set_status(engine, projection.name, {"state": "replaying", "started_at": began})
        await prepare_tables(engine, projection)
    ends = await end_offsets(settings, projections)
    replay_started = time.monotonic()
    if workers > 1:
        applied = await replay_in_processes(settings, engine, projections, ends, workers, progress)
    else:
        applied = await replay(settings, engine, projections, ends, progress)
    replay_seconds = time.monotonic() - replay_started
    index_seconds: dict[str, float] = {}
    for projection in filter(lambda p: p.insert_only, projections):
        await set_status(engine, projection.name, {"state": "indexing", "started_at": began})
        indexing_started = time.monotonic()
        async with engine.begin() as connection:
            for table in projection.tables:
                await deferred_indexes.build_indexes(connection, REBUILD_SCHEMA, table.name)
        index_seconds[projection.name] = time.monotonic() - indexing_started
    reports = []
    for projection in projections:
        swap_started = time.monotonic()
        report = await compare_and_swap(settings, engine, projection, verify=verify)
        report.events, report.seconds = applied[projection.name], time.monotonic() - started
        report.replay_seconds, report.index_seconds = replay_seconds, index_seconds.get(projection.name, 0.0)
        report.swap_seconds = time.monotonic() - swap_started
        await set_status(
            engine,
            projection.name,
            {
                "state": "swapped" if report.swapped else "refused",
                "finished_at": time.time(),
                "events": report.events,
                "seconds": round(report.seconds, 3),
                "differs": report.differs,
            },
        )
        reports.append(report)
    return reports


async def prepare_tables(
    engine: AsyncEngine, projection: Projection, schema: str = REBUILD_SCHEMA, checkpoint: str | None = None
) -> None:
    """Fresh, empty tables for the projection in `schema`, and no checkpoints of its replay yet."""
    async with engine.begin() as connection:
        await connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        for table in projection.tables:
            await connection.execute(text(f"DROP TABLE IF EXISTS {schema}.{table.name}"))
            if projection.insert_only:
                await connection.execute(text(deferred_indexes.create_without_indexes(schema, table.name)))
            else:
                await connection.execute(
                    text(f"CREATE TABLE {schema}.{table.name} (LIKE public.{table.name} INCLUDING ALL)")
                )
        await connection.execute(
            delete(checkpoint_table).where(checkpoint_table.c.projection == (checkpoint or rebuild_name(projection)))
        )


async def end_offsets(settings: Settings, projections: Sequence[Projection]) -> Ends:
    """Where every partition the projections read ends now: the replay goes that far, the swap the rest."""
    consumer = AIOKafkaConsumer(**connection(settings), isolation_level="read_committed")
    await consumer.start()
    try:
        return await ends_of(
            consumer,
            settings,
            {slot for projection in projections for slot in checkpoints.slots_of(settings, projection)},
        )
    finally:
        await consumer.stop()


def replayed(
    projections: Sequence[Projection], standing: Mapping[str, Mapping[Slot, int]], ends: Ends
) -> tuple[int, int]:
    """(done, total) for a progress bar: how far the slowest projection has come, in messages."""

    def share(projection: Projection, positions: Mapping[Slot, int]) -> tuple[int, int]:
        mine = {slot: end for slot, end in ends.items() if slot[0] in projection.topics}
        return sum(min(positions.get(slot, 0), end) for slot, end in mine.items()), sum(mine.values())

    shares = [share(projection, standing.get(projection.name, {})) for projection in projections]
    total = max((total for _, total in shares), default=0)
    return total - max((whole - done for done, whole in shares), default=0), total


async def replay(
    settings: Settings,
    engine: AsyncEngine,
    projections: Sequence[Projection],
    ends: Ends,
    progress: Progress | None = None,
    *,
    schema: str = REBUILD_SCHEMA,
    checkpoint: Callable[[Projection], str] = rebuild_name,
    until: datetime | None = None,
) -> dict[str, int]:
    """Apply the partitions in `ends` up to there, in this process, into `schema` (with `until`, only
    the events that occurred by then); the messages applied, per projection."""
    members = [Member(projection, checkpoint(projection)) for projection in projections]
    options = RunnerOptions(
        schema=schema, group=False, batch=20_000, failure_mode="halt", slots=frozenset(ends), bulk=True, until=until
    )
    runner = ProjectionRunner(settings, engine, members, options)
    await runner.start()
    try:

        def standing() -> dict[str, dict[Slot, int]]:
            return {member.projection.name: member.positions for member in members}

        while True:
            done, total = replayed(projections, standing(), ends)
            if progress:
                progress(done, total)
            if done >= total:
                break
            await runner.step()
            for member in members:
                if member.halted:
                    raise RuntimeError(
                        f"{member.projection.name}: an event failed during the rebuild; see `eventline failures`"
                    )
    finally:
        await runner.stop()
    return {member.projection.name: member.applied for member in members}


def default_workers(settings: Settings) -> int:
    """One replay process per CPU core, and never more than there are partitions to share."""
    return max(1, min(os.cpu_count() or 1, settings.partitions))


async def replay_in_processes(
    settings: Settings,
    engine: AsyncEngine,
    projections: Sequence[Projection],
    ends: Ends,
    workers: int,
    progress: Progress | None = None,
) -> dict[str, int]:
    """`replay`, with the partitions dealt round-robin to `workers` processes running side by side.

    Each process has a share of the slots and its own checkpoints in them, so
    they never touch each other's rows of the checkpoint table; progress is read
    from there. A failed process fails the rebuild, and cancelling it kills them.
    """
    stray = [p.name for p in projections if PROJECTIONS.get(p.name) is not p]
    if stray:
        raise ValueError(f"only registered projections can be rebuilt in processes: {', '.join(stray)}")
    shares = [{slot: end for slot, end in ends.items() if slot[1] % workers == i} for i in range(workers)]
    running: dict[asyncio.Future[tuple[bytes, bytes]], asyncio.subprocess.Process] = {}
    applied = dict.fromkeys((p.name for p in projections), 0)
    try:
        for share in filter(None, shares):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "projections.rebuild_worker",
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            running[asyncio.ensure_future(process.communicate(worker_job(settings, projections, share)))] = process
        pending = set(running)
        while pending:
            finished, pending = await asyncio.wait(pending, timeout=PROGRESS_EVERY_S)
            for done in finished:
                out, err = done.result()
                if running[done].returncode != 0:
                    raise RuntimeError(
                        f"a rebuild process failed (exit {running[done].returncode}): "
                        f"{err.decode(errors='replace')[-2000:]}"
                    )
                for name, count in orjson.loads(out).items():
                    applied[name] += count
            if progress:
                progress(*replayed(projections, await rebuild_checkpoints(engine, projections), ends))
    finally:
        for process in running.values():
            if process.returncode is None:
                process.kill()
        for future in running:
            with contextlib.suppress(BaseException):
                await future
    return applied


def worker_job(settings: Settings, projections: Sequence[Projection], share: Ends) -> bytes:
    """What a worker reads on stdin; a pipe rather than its command line, as the settings hold credentials."""
    return orjson.dumps(
        {
            "settings": settings.model_dump(mode="json"),
            "projections": [p.name for p in projections],
            "ends": [[topic, partition, end] for (topic, partition), end in share.items()],
        }
    )


async def rebuild_checkpoints(engine: AsyncEngine, projections: Sequence[Projection]) -> dict[str, dict[Slot, int]]:
    async with engine.connect() as connection:
        return {
            projection.name: await checkpoints.load(connection, rebuild_name(projection)) for projection in projections
        }


async def compare_and_swap(
    settings: Settings, engine: AsyncEngine, projection: Projection, *, verify: bool
) -> RebuildReport:
    async with engine.begin() as connection:
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(projection.name)})
        live = await checkpoints.load(connection, projection.name)
        rebuilt = await checkpoints.load(connection, rebuild_name(projection))
        target = {slot: max(live.get(slot, 0), rebuilt.get(slot, 0)) for slot in set(live) | set(rebuilt)}
        # Comparing is `verify`'s job: it reads both copies in full while live batches wait on
        # the lock. To compare like with like, the live copy first comes to the same checkpoints.
        compared = verify and bool(live)
        if compared:
            await catch_up(settings, connection, projection, projection.name, None, live, target)
        await catch_up(settings, connection, projection, rebuild_name(projection), REBUILD_SCHEMA, rebuilt, target)
        report = RebuildReport(projection.name, 0, 0.0, {f"{t}[{p}]": o for (t, p), o in sorted(target.items())})
        if compared:
            report.tables = [await compare(connection, projection, table.name) for table in projection.tables]
        if verify and report.differs:
            return report  # leaving the block commits the catch-up only; nothing is swapped
        await swap(connection, projection)
        report.swapped = True
        return report


async def catch_up(
    settings: Settings,
    connection: AsyncConnection,
    projection: Projection,
    name: str,
    schema: str | None,
    start: dict[Slot, int],
    target: dict[Slot, int],
) -> None:
    """Apply the messages between `start` and `target` to one copy, inside the swap transaction."""
    todo = {slot: (start.get(slot, 0), end) for slot, end in target.items() if start.get(slot, 0) < end}
    if not todo:
        return
    await checkpoints.ensure(connection, name, todo)
    messages = await read_range(settings, projection, todo)
    translated = (
        connection if schema is None else await connection.execution_options(schema_translate_map={None: schema})
    )
    await checkpoints.advance(translated, name, todo)
    if messages:
        await projection.apply(translated, messages)


async def read_range(settings: Settings, projection: Projection, ranges: dict[Slot, tuple[int, int]]) -> list[Message]:
    consumer = AIOKafkaConsumer(**connection(settings), isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = {TopicPartition(settings.topic(topic), p): (topic, p) for topic, p in ranges}
        consumer.assign(list(tps))
        for tp, slot in tps.items():
            consumer.seek(tp, ranges[slot][0])
        messages: list[Message] = []
        pending = set(tps)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                topic, partition = tps[tp]
                end = ranges[(topic, partition)][1]
                decode = projection.topics[topic]
                messages += [
                    Message(topic, partition, r.offset, decode_record(decode, r.value))
                    for r in records
                    if r.offset < end
                ]
            pending = {tp for tp in pending if await consumer.position(tp) < ranges[tps[tp]][1]}
    finally:
        await consumer.stop()
    keys = await start_key_store(settings, None)
    try:
        return await opened(messages, keys)
    finally:
        if keys is not None:
            await keys.stop()


async def compare(connection: AsyncConnection, projection: Projection, table_name: str) -> TableDiff:
    table = next(t for t in projection.tables if t.name == table_name)
    keys = ", ".join(f'"{column}"' for column in projection.key_columns(table))
    row = (
        await connection.execute(
            text(f"""
        WITH live AS (SELECT ({keys}) AS k, md5(t::text) AS h FROM public.{table_name} t),
             rebuilt AS (SELECT ({keys}) AS k, md5(t::text) AS h FROM {REBUILD_SCHEMA}.{table_name} t)
        SELECT (SELECT count(*) FROM live) AS live_rows,
               (SELECT count(*) FROM rebuilt) AS rebuilt_rows,
               count(*) FILTER (WHERE rebuilt.k IS NULL) AS only_live,
               count(*) FILTER (WHERE live.k IS NULL) AS only_rebuilt,
               count(*) FILTER (WHERE live.h <> rebuilt.h) AS changed
        FROM live FULL JOIN rebuilt ON live.k = rebuilt.k
    """)
        )
    ).one()
    return TableDiff(table_name, row.live_rows, row.rebuilt_rows, row.only_live, row.only_rebuilt, row.changed)


async def swap(connection: AsyncConnection, projection: Projection) -> None:
    await connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {RETIRED_SCHEMA}"))
    for table in projection.tables:
        await connection.execute(text(f"DROP TABLE IF EXISTS {RETIRED_SCHEMA}.{table.name}"))
        await connection.execute(text(f"ALTER TABLE public.{table.name} SET SCHEMA {RETIRED_SCHEMA}"))
        await connection.execute(text(f"ALTER TABLE {REBUILD_SCHEMA}.{table.name} SET SCHEMA public"))
    await connection.execute(delete(checkpoint_table).where(checkpoint_table.c.projection == projection.name))
    await connection.execute(
        update(checkpoint_table)
        .where(checkpoint_table.c.projection == rebuild_name(projection))
        .values(projection=projection.name, updated_at=func.now())
    )


async def set_status(engine: AsyncEngine, name: str, rebuild_state: dict[str, Any]) -> None:
    async with engine.begin() as connection:
        statement = insert(projection_status).values(projection=name, rebuild=rebuild_state)
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=[projection_status.c.projection],
                set_={"rebuild": statement.excluded.rebuild, "updated_at": func.now()},
            )
        )


def summary(report: RebuildReport) -> str:
    lines = [
        f"{report.projection}: {report.events} events in {report.seconds:.1f}s "
        f"({report.events_per_s:,.0f}/s), {'swapped' if report.swapped else 'NOT swapped'}",
        f"  replay {report.replay_seconds:.1f}s, indexes {report.index_seconds:.1f}s, "
        f"catch-up{', compare' if report.tables else ''} and swap {report.swap_seconds:.1f}s",
    ]
    for t in report.tables:
        verdict = (
            "identical"
            if not t.differs
            else (f"{t.only_live} only live, {t.only_rebuilt} only rebuilt, {t.changed} changed")
        )
        lines.append(f"  {t.table}: {t.live_rows} live rows, {t.rebuilt_rows} rebuilt rows: {verdict}")
    projection = PROJECTIONS.get(report.projection)
    if report.differs and projection is not None and projection.replay_note:
        lines.append(f"  note: {projection.replay_note}")
    return "\n".join(lines)


# --- A read model as of a past moment, for audit ---------------------------------------------------

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class AsOfRefused(ValueError):
    """The target schema cannot take a read model as of a moment (it is the live one, or no name)."""


async def rebuild_as_of(
    settings: Settings,
    engine: AsyncEngine,
    projections: Sequence[Projection],
    as_of: datetime,
    into: str,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Build the projections' tables in schema `into` from the events that occurred by `as_of`,
    without touching the live tables or a rebuild in progress: nothing is compared or swapped.

    The whole log up to now is read (an event's time is the moment it was decided, which a record's
    offset does not bound) and each event after `as_of` is passed over. Returns the events applied.
    """
    if not SCHEMA_NAME.match(into) or into in ("public", REBUILD_SCHEMA) or into.startswith("pg_"):
        raise AsOfRefused(f"{into!r} is not a schema a read model as of a moment may be built in")
    if as_of.tzinfo is None:
        raise AsOfRefused("the moment needs its offset (Z or +01:00)")

    def checkpoint(projection: Projection) -> str:
        return f"{projection.name}@{into}"

    for projection in projections:
        await prepare_tables(engine, projection, schema=into, checkpoint=checkpoint(projection))
    ends = await end_offsets(settings, projections)
    applied = await replay(
        settings, engine, projections, ends, progress, schema=into, checkpoint=checkpoint, until=as_of
    )
    async with engine.begin() as connection:
        for projection in filter(lambda p: p.insert_only, projections):
            for table in projection.tables:
                await deferred_indexes.build_indexes(connection, into, table.name)
        names = [checkpoint(projection) for projection in projections]
        await connection.execute(delete(checkpoint_table).where(checkpoint_table.c.projection.in_(names)))
    return applied
