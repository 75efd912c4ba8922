"""Helpers for tests that run real processes against the real broker and database."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from alembic import command
from sqlalchemy import text

from app.config import Settings
from app.db import create_engine
from app.eventstore.bad_records import UNREADABLE
from app.eventstore.envelope import EventEnvelope
from app.eventstore.kafka import admin_client, connection
from app.eventstore.partitioner import partition_for
from app.eventstore.processor_group import owns_every_partition
from app.eventstore.topics import create_topics
from app.main import Worker, create_app
from app.privacy.personal_data import open_event
from app.privacy.runtime import start_key_store
from tests.conftest import ROOT, alembic_config, create_database, new_settings
from tests.waiting import eventually

# Where scripts/infra.py keeps the session's broker and database (as infra.py reads it).
LOCAL = Path(os.environ.get("EVENTLINE_LOCAL_DIR", ROOT / ".local")).resolve()


def kafka_pid() -> int:
    """The pid of the test session's broker (scripts/infra.py writes it)."""
    home = LOCAL / "kafka"
    pid = int((home / "kafka.pid").read_text().split()[0])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert str(home).encode() in cmdline, f"pid {pid} is not the broker of {home}: {cmdline[:200]!r}"
    return pid


@contextmanager
def paused(pid: int, timeout: float = 10.0) -> Iterator[None]:
    """SIGSTOP `pid` and return only once every thread of it has stopped; SIGCONT on the way out.

    A signal is delivered asynchronously: a test that asks the "hung" process something right
    after `os.kill` can still be answered by a thread that has not stopped yet."""
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + timeout
        while not all_threads_stopped(pid):
            assert time.monotonic() < deadline, f"pid {pid} did not stop within {timeout} s"
            time.sleep(0.005)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def all_threads_stopped(pid: int) -> bool:
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:  # the state is the field after the parenthesised command name
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            continue  # a thread that ended meanwhile
    return bool(states) and all(state in ("T", "t") for state in states)


def broker_files_holding(settings: Settings, needle: bytes, topic: str = "*") -> list[str]:
    """The broker's files of the namespace's topics (`topic`: one short name, or all) that hold
    `needle`: every partition and segment, live or being deleted, aborted records included."""
    pattern = f"{settings.namespace}.{topic}-*/*"
    return [
        str(path.relative_to(LOCAL))
        for path in sorted((LOCAL / "kafka" / "data").glob(pattern))
        if path.is_file() and needle in path.read_bytes()
    ]


async def tables_holding(ns: Settings, needle: str) -> list[str]:
    """Every table of the read-model database (rebuild schemas included) whose rows hold `needle`."""
    engine = create_engine(ns)
    try:
        async with engine.connect() as db:
            tables = (
                await db.execute(
                    text(
                        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
                    )
                )
            ).scalars()
            found = []
            for table in tables:
                query = text(f"SELECT count(*) FROM {table} t WHERE strpos(t::text, :needle) > 0")
                if await db.scalar(query, {"needle": needle}):
                    found.append(table)
            return found
    finally:
        await engine.dispose()


def free_port() -> int:
    """A loopback port nothing listens on now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fresh_namespace(settings: Settings, *, own_database: bool = False, **overrides: object) -> Settings:
    """Settings for a namespace of its own, with its topics created.

    Read models and checkpoints are per database, so tests that run projectors
    ask for a database of their own too (built by the migrations).
    """
    database_url = settings.database_url
    if own_database:
        database_url = await create_database(settings.database_url, f"eventline_test_{uuid.uuid4().hex[:10]}")
        await asyncio.to_thread(command.upgrade, alembic_config(database_url), "head")
    fresh = new_settings(database_url=database_url, **overrides)
    admin = admin_client(fresh)
    await admin.start()
    try:
        await create_topics(admin, fresh)
    finally:
        await admin.close()
    return fresh


@asynccontextmanager
async def api_client(
    settings: Settings, workers: Mapping[str, Worker] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in this process (its lifespan included), spoken to over ASGI.

    With a processor among `workers`, yielded once the processor group owns every command partition:
    a test's first command would otherwise wait out the group's first join inside its own
    `command_timeout_s`, and on a busy machine get a 202 where it asserts a decision."""
    app = create_app(settings, workers=workers)
    async with app.router.lifespan_context(app):
        if workers and "processor" in workers:
            await eventually(lambda: owns_every_partition(settings), True, timeout=60, interval=0.2)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://eventline", timeout=30) as client:
            yield client


def environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLINE_")}
    for name, value in settings.model_dump(mode="json").items():
        env[f"EVENTLINE_{name.upper()}"] = str(value)
    return env


@dataclass
class Process:
    """An `eventline <command>` subprocess whose log goes to a temporary file."""

    settings: Settings
    command: str
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    def start(self) -> Process:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [str(ROOT / ".venv/bin/eventline"), self.command],
                env=environment(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait()

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit."""
        if self.popen is None or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else 0
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        return self.wait()

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.popen is not None
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


async def wait_for_log(process: Process, pattern: str, after: int = 0, timeout: float = 60) -> None:
    """Wait until the process logs a line matching `pattern` (past the first `after` characters)."""

    async def logged() -> bool:
        return re.search(pattern, process.log()[after:]) is not None

    await eventually(logged, True, timeout=timeout)


async def read_topic(settings: Settings, name: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every committed record of `<ns>.<name>`, in partition then offset order."""
    consumer = AIOKafkaConsumer(
        **connection(settings),
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        topic = settings.topic(name)
        count = settings.result_partitions if name == "command-results" else settings.partitions
        tps = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: dict[int, list[ConsumerRecord[bytes, bytes]]] = {tp.partition: [] for tp in tps}
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, items in batch.items():
                records[tp.partition].extend(items)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return [record for p in sorted(records) for record in records[p]]


async def read_events(settings: Settings) -> list[EventEnvelope]:
    """Every event in the log; records that are not events (a foreign producer's junk) are left out."""
    return [event for record in await read_topic(settings, "events") if (event := decoded(record.value)) is not None]


async def read_opened_events(settings: Settings) -> list[EventEnvelope]:
    """Every event as a reader shows it: personal fields opened, or `[erased]` (docs/privacy.md)."""
    events = await read_events(settings)
    keys = await start_key_store(settings, None)
    if keys is None:
        return events
    try:
        return [await open_event(event, keys) for event in events]
    finally:
        await keys.stop()


def decoded(raw: bytes | None) -> EventEnvelope | None:
    try:
        return EventEnvelope.decode(raw or b"")
    except UNREADABLE:
        return None


async def write_foreign_record(settings: Settings, aggregate_id: str, value: bytes) -> None:
    """Write to the aggregate's event partition what the processor never would: a plain, foreign record."""
    producer = AIOKafkaProducer(**connection(settings))
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topic("events"), value, partition=partition_for(aggregate_id, settings.partitions)
        )
    finally:
        await producer.stop()


def assert_versions_gapless(events: list[EventEnvelope]) -> None:
    """Per aggregate, versions in log order are exactly 1..N."""
    by_aggregate: dict[str, list[int]] = {}
    for event in events:
        by_aggregate.setdefault(event.aggregate_id, []).append(event.version)
    for aggregate_id, versions in by_aggregate.items():
        assert versions == list(range(1, len(versions) + 1)), f"{aggregate_id}: {versions}"


async def end_offsets(settings: Settings, name: str = "commands") -> dict[TopicPartition, int]:
    """The end offsets of every partition of `<ns>.<name>`: equal before and after means nothing was written."""
    consumer = AIOKafkaConsumer(**connection(settings))
    await consumer.start()
    try:
        count = settings.result_partitions if name == "command-results" else settings.partitions
        return dict(await consumer.end_offsets([TopicPartition(settings.topic(name), p) for p in range(count)]))
    finally:
        await consumer.stop()


@dataclass
class ApiProcess:
    """A real `eventline api` (uvicorn over TCP) on a port of its own."""

    ns: Settings
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ns.api_port}"

    async def start(self) -> None:
        self.process = Process(self.ns, "api").start()
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as http:

            async def ready() -> int:
                return (await http.get("/health/ready")).status_code

            await eventually(ready, 200, timeout=60, interval=0.2)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
