"""Read-your-writes: wait until a projection has applied a consistency token.

Projectors `NOTIFY` on every checkpoint move; one `LISTEN` connection per API
process wakes the waiters, which then re-read the checkpoints. Waiters also
re-check every quarter second, so a lost notification (or a listener
reconnecting after a database restart) costs latency, never correctness.
However many requests wait, a re-read is one query that they share: a waiter
per request re-reading on every notification emptied the connection pool. And a
request arriving between notifications reads nothing: the checkpoints read since
the latest notification are as new as PostgreSQL can say they are. It used to
read them once more for each request arriving with a token not applied yet,
which is nearly every read made right after its command.

A token no wait can satisfy is refused with 400 at once rather than after the
timeout: one naming a partition the events topic does not have, or an offset
at or past the log's end (the events log's end offsets are read only for a
token that is not applied yet, and kept, since they only grow).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.errors import Problem
from app.config import Settings
from app.eventstore import position
from projections import queries
from projections.checkpoints import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

RECHECK_S = 0.25


LOG_END_TIMEOUT_S = 2.0


MARKER_POLL_S = 0.01


class ConsistencyWaiter:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        offsets: AIOKafkaConsumer | None = None,
        watermarks: AIOKafkaConsumer | None = None,
    ) -> None:
        """`offsets` reads committed ends (read_committed); `watermarks` every record's (read_uncommitted)."""
        self.settings, self.engine, self.offsets, self.watermarks = settings, engine, offsets, watermarks
        self.log_ends: dict[int, int] = {}  # events partition → an end offset seen (they only grow)
        self.moved = asyncio.Event()  # set (and replaced) by each notification
        self.listener: asyncio.Task[None] | None = None
        # Projection → {partition: next offset} in the event log, as last read.
        self.applied_up_to: dict[str, dict[int, int]] = {}
        # The re-read in flight, with the notification event current when it started.
        self.reading: tuple[asyncio.Event, asyncio.Task[None]] | None = None

    async def start(self) -> None:
        self.listener = asyncio.create_task(self.listen(), name="checkpoint-listener")

    async def stop(self) -> None:
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.listener

    async def listen(self) -> None:
        dsn = make_url(self.settings.database_url).set(drivername="postgresql").render_as_string(False)
        while True:
            try:
                connection = await asyncpg.connect(dsn, timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                log.debug("checkpoint listener: %r; reconnecting", error)
                await asyncio.sleep(1)
                continue
            await self.follow(connection)

    async def follow(self, connection: asyncpg.Connection) -> None:
        """Relay notifications until the connection dies (a database restart, say)."""
        closed = asyncio.Event()
        connection.add_termination_listener(lambda _: closed.set())
        try:
            await connection.add_listener(NOTIFY_CHANNEL, self.on_notify)
            self.on_notify()  # checkpoints may have moved while we were away
            await closed.wait()
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    def on_notify(self, *_: object) -> None:
        self.moved.set()
        self.moved = asyncio.Event()

    async def wait(self, projection: str | tuple[str, ...], token: str | None) -> None:
        """Return once `projection` (or every one of several) has applied `token`; 503 after the timeout."""
        if not token:
            return
        try:
            wanted = position.decode(token)
        except position.InvalidPosition as error:
            raise Problem(400, "invalid-consistency-token", "Invalid X-Consistent-With", detail=str(error)) from error
        if unknown := sorted(p for p in wanted if p >= self.settings.partitions):
            raise unsatisfiable(f"the event log has no partition {unknown[0]} (it has {self.settings.partitions})")
        names = (projection,) if isinstance(projection, str) else projection
        deadline = time.monotonic() + self.settings.consistency_timeout_s
        quiet = False  # the last wait ended without a notification: re-read even if nothing moved
        while not self.applied(names, wanted):
            moved = self.moved  # taken before the re-read, so a notification during it is not missed
            await self.reread(quiet)
            if self.applied(names, wanted):
                return
            if beyond := await self.past_the_log(wanted):
                partition, offset = beyond
                raise unsatisfiable(f"no event is at {partition}:{offset} yet: the log's end there is before it")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Problem(
                    503,
                    "not-yet-consistent",
                    "The read model has not caught up yet",
                    detail=f"projection {projection} has not applied {token} yet",
                    headers={"Retry-After": "1"},
                    projection=projection,
                )
            try:
                await asyncio.wait_for(moved.wait(), min(remaining, RECHECK_S))
                quiet = False
            except TimeoutError:
                quiet = True

    async def caught_up_with_the_log(self, projection: str | tuple[str, ...]) -> None:
        """Return once `projection` has applied every event committed before this call.

        For a command checked against a read model that does not know a fact yet: before it
        answers "unknown", the read model catches up with the log's current end, so a fact the
        API confirmed before the request (an account just opened, a conversation just started)
        is always seen. Bounded like any wait (503 `not-yet-consistent`); 503
        `event-log-unavailable` when Kafka cannot say where the log ends.
        """
        if self.offsets is None:
            return
        tps = [TopicPartition(self.settings.topic("events"), p) for p in range(self.settings.partitions)]
        try:
            async with asyncio.timeout(LOG_END_TIMEOUT_S):
                ends = await self.settled_ends(self.offsets, tps)
        except (KafkaError, TimeoutError) as error:
            log.warning("reading the events log's end to catch up %s: %r", projection, error)
            raise Problem(
                503,
                "event-log-unavailable",
                "The event log is unavailable",
                detail="could not read where the event log ends; retry shortly",
                headers={"Retry-After": "1"},
            ) from error
        # Events are written only in transactions, so the record before a partition's end is a
        # commit (or abort) marker, which no consumer is given: the last event can be at end - 2.
        wanted = {tp.partition: end - 2 for tp, end in ends.items() if end >= 2}
        for tp, end in ends.items():
            self.log_ends[tp.partition] = max(end, self.log_ends.get(tp.partition, 0))
        await self.wait(projection, position.encode(wanted))

    async def settled_ends(self, offsets: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The committed ends, once every transaction that had written to these partitions when this
        was called has its commit or abort marker there.

        A transaction commits atomically, but the coordinator writes its markers partition by
        partition after the decision: the command's result can already be visible (and the
        client answered) while the events partition still shows the transaction open, its end
        for committed readers (the last stable offset) before the transaction's events. Waiting
        until that end reaches every record written before the call closes the gap; it takes as
        long as the transactions in flight then (a clean-clone CI run found it: a conversation
        just started was not found, once in a hundred, while the broker was slow).
        """
        stable: dict[TopicPartition, int] = await offsets.end_offsets(tps)
        if self.watermarks is None:
            return stable
        written: dict[TopicPartition, int] = await self.watermarks.end_offsets(tps)
        while not all(stable[tp] >= written[tp] for tp in tps):
            await asyncio.sleep(MARKER_POLL_S)
            stable = await offsets.end_offsets(tps)
        return stable

    async def past_the_log(self, wanted: position.Position) -> tuple[int, int] | None:
        """A (partition, offset) of the token at or past the end of the events log, if any.

        A token from a command names an event already committed, so it is always before the
        end. The end is the log's, every record written (the high watermark), not the committed
        end: the commit markers reach the events partition after the command's result may have
        answered the client, and for that moment a committed reader's end is still before the
        event the token names. When the end cannot be read (Kafka down), the token is given the
        benefit of the doubt: the wait goes on, and ends in 503 like any other."""
        unsure = {p for p, o in wanted.items() if o >= self.log_ends.get(p, 0)}
        reader = self.watermarks or self.offsets
        if not unsure or reader is None:
            return None
        tps = [TopicPartition(self.settings.topic("events"), p) for p in sorted(unsure)]
        try:
            async with asyncio.timeout(LOG_END_TIMEOUT_S):
                ends = await reader.end_offsets(tps)
        except (KafkaError, TimeoutError) as error:
            log.debug("reading the events log's end for a consistency token: %r", error)
            return None
        for tp, end in ends.items():
            self.log_ends[tp.partition] = max(end, self.log_ends.get(tp.partition, 0))
        return next(((p, o) for p, o in sorted(wanted.items()) if o >= self.log_ends.get(p, 0)), None)

    def applied(self, names: tuple[str, ...], wanted: position.Position) -> bool:
        return all(
            self.applied_up_to.get(name, {}).get(partition, 0) > offset
            for name in names
            for partition, offset in wanted.items()
        )

    async def reread(self, quiet: bool = False) -> None:
        """Read every projection's checkpoints, unless a read begun since the latest notification
        is in flight (join it) or done (its checkpoints are as new as any notification can tell).

        A request arriving with a token the projections have not applied yet, the usual case
        for a read right after its command, used to start a read of its own: a query per
        request instead of one per notification. Skipping it is safe because PostgreSQL
        notifies only after a commit: a checkpoint moved after that read began sends a
        notification, which wakes the waiters to read again. `quiet` (a recheck after a wait
        that no notification ended) reads anyway, for a notification that was lost.
        """
        current = self.reading
        failed = current is not None and current[1].done() and (current[1].cancelled() or current[1].exception())
        if current is None or current[0] is not self.moved or failed or (quiet and current[1].done()):
            current = self.reading = (self.moved, asyncio.create_task(self.read_checkpoints()))
        await asyncio.shield(current[1])

    async def read_checkpoints(self) -> None:
        async with self.engine.connect() as connection:
            self.applied_up_to = await queries.event_checkpoints(connection)


def unsatisfiable(detail: str) -> Problem:
    return Problem(400, "unsatisfiable-consistency-token", "X-Consistent-With names no event", detail=detail)
