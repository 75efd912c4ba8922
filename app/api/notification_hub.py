"""One Kafka consumer per API process, fanned out to every notification stream.

Opening a consumer per SSE stream made every stream a Kafka client (thousands
of connections, fetches and metadata refreshes for one topic) and left
nothing to cap. Here one consumer reads `<ns>.notifications` from the end and
hands each notification to the streams that want it: every stream of a
service key, and the streams of the account's holder (an index by account, so
a notification costs the same however many users stream).

A stream has a bounded buffer. One whose client reads too slowly for it is
not allowed to grow: it is marked `overflowed`, gets nothing more, and its
response ends after what it had queued, so the client's last id resumes it
exactly where it stopped.

Resuming: a stream registers at the hub's position (`subscribe` returns it,
with no await between, so nothing published falls between the two). What came
before that, from the client's own position, is its backlog: from the recent
history kept here when it reaches back far enough, else read from Kafka by a
consumer of the stream's own, of which at most `notification_replays_max` run
at once. Both hold every account's notifications: the stream sends only those
its subscriber wants (`Stream.passes`), as the fan-out does for live ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from app.config import Settings
from app.eventstore.bad_records import UNREADABLE, skip_bad_record
from app.eventstore.kafka import connection
from app.eventstore.position import Position
from app.observability.metrics import NOTIFICATION_OVERFLOWS, NOTIFICATION_STREAMS

log = logging.getLogger(__name__)

FETCH_WAIT_MS = 100  # how long a fetch waits for the next notification: the stream's added latency


@dataclass(frozen=True, slots=True)
class Item:
    """One notification, parsed and serialised once for every stream that gets it."""

    partition: int
    offset: int
    aggregate_id: str
    kind: bytes  # the SSE event name: the event's type
    data: bytes  # the notification as one line of JSON


def item_of(record: ConsumerRecord[bytes, bytes], consumer: str) -> Item | None:
    """The record as an Item, or None for a record that is not a notification (skipped, counted)."""
    try:
        notification = orjson.loads(record.value or b"")
        kind = str(notification["type"])
        if not kind.isascii() or not kind.isprintable():
            raise ValueError("not a notification type")
        aggregate_id = str(notification["aggregate_id"])
    except UNREADABLE as error:
        skip_bad_record(consumer, record, error)
        return None
    # Serialised again: a record's own bytes could hold a newline, which would end the frame early.
    return Item(record.partition, record.offset, aggregate_id, kind.encode(), orjson.dumps(notification))


class Subscriber:
    """One stream's queue: bounded, and closed for good once it overflows."""

    def __init__(self, buffer: int, accounts: frozenset[str] | None) -> None:
        self.accounts = accounts  # None: every notification (a service key)
        self.queue: deque[Item] = deque()
        self.buffer = buffer
        self.overflowed = False
        self.wakeup = asyncio.Event()

    def wants(self, item: Item) -> bool:
        return self.accounts is None or item.aggregate_id in self.accounts

    def offer(self, item: Item) -> None:
        if self.overflowed:
            return
        if len(self.queue) >= self.buffer:
            NOTIFICATION_OVERFLOWS.inc()
            self.overflowed = True  # what is queued is still delivered; then the stream ends
        else:
            self.queue.append(item)
        self.wakeup.set()


class Exhausted(Exception):
    """No more streams (or replays) now; a client retries after a moment."""


class Stream:
    """One client's stream: its backlog, then what the hub queues for it."""

    def __init__(
        self,
        hub: NotificationHub,
        subscriber: Subscriber,
        begin: Position,
        upto: Position,
        backlog: list[Item],
        missing: list[int],
        until: float | None,
    ) -> None:
        self.hub, self.subscriber = hub, subscriber
        self.cursor = dict(begin)  # the next offset per partition: what the client's id says
        self.begin, self.upto, self.backlog, self.missing = begin, upto, backlog, missing
        self.replaying = bool(missing)
        self.closed = False
        self.until = until  # when the stream must end (its token's expiry), in time.time(); None: never
        self.expired = False

    async def items(self, heartbeat_s: float) -> AsyncIterator[Item | None]:
        """Each item in order per partition; None when nothing came for `heartbeat_s`. Ends on overflow,
        and at `until` (then `expired`): a stream does not outlive the token that opened it."""
        for item in self.backlog:
            if self.passes(item):
                yield item
        if self.missing:
            try:
                async for item in self.hub.from_kafka(self.begin, self.upto, self.missing):
                    if self.passes(item):
                        yield item
            finally:
                self.end_replay()
        queue = self.subscriber.queue
        while True:
            while queue:
                item = queue.popleft()
                if item.offset >= self.cursor[item.partition]:  # a resume ahead of this hub skips what it had
                    yield self.advance(item)
            if self.subscriber.overflowed:
                return  # too slow for its buffer: the last id sent resumes it exactly here
            left = None if self.until is None else self.until - time.time()
            if left is not None and left <= 0:
                self.expired = True
                return  # the last id sent resumes it, with a fresh token
            self.subscriber.wakeup.clear()
            try:
                await asyncio.wait_for(
                    self.subscriber.wakeup.wait(), heartbeat_s if left is None else min(heartbeat_s, left)
                )
            except TimeoutError:
                if self.until is None or time.time() < self.until:
                    yield None

    def advance(self, item: Item) -> Item:
        self.cursor[item.partition] = item.offset + 1
        return item

    def passes(self, item: Item) -> bool:
        """Step over a backlog item; True when it is this stream's to send.

        The backlog (history or replay) holds every account's notifications, unlike the queue the
        hub fills, so an end user's must be filtered here. The cursor steps over the others too,
        so the next id sent resumes exactly past them.
        """
        self.advance(item)
        return self.subscriber.wants(item)

    def end_replay(self) -> None:
        if self.replaying:
            self.replaying = False
            self.hub.replays -= 1

    def close(self) -> None:
        """Give back the stream's place; safe to call more than once."""
        if not self.closed:
            self.closed = True
            self.end_replay()
            self.hub.unsubscribe(self.subscriber)
            self.hub.streams -= 1
            NOTIFICATION_STREAMS.set(self.hub.streams)


class NotificationHub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic("notifications")
        self.position: Position = {}  # the next offset the hub reads, per partition
        self.history: dict[int, deque[Item]] = {}
        self.complete_from: Position = {}  # history holds every notification of a partition from here on
        self.everyone: set[Subscriber] = set()
        self.by_account: dict[str, set[Subscriber]] = {}
        self.streams = 0  # open streams, subscribed or still replaying
        self.replays = 0  # streams reading their backlog from Kafka now
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        consumer = self.new_consumer()
        await consumer.start()
        self.consumer = consumer
        tps = [TopicPartition(self.topic, p) for p in range(self.settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        self.begin_at({tp.partition: await consumer.position(tp) for tp in tps})
        self.task = asyncio.create_task(self.run(consumer), name="notification-hub")

    def new_consumer(self, auto_offset_reset: str = "latest") -> AIOKafkaConsumer:
        """A consumer of committed notifications, assigned by hand (no group, nothing committed)."""
        return AIOKafkaConsumer(
            **connection(self.settings),
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )

    def begin_at(self, position: Position) -> None:
        """Read on from `position` (next offsets), with an empty history."""
        self.position = dict(position)
        self.history = {partition: deque() for partition in position}
        self.complete_from = dict(position)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()

    async def run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            except Exception as error:  # a broker outage is retried inside aiokafka; anything else, here
                log.warning("notification hub: fetch failed: %r", error)
                await asyncio.sleep(1.0)
                continue
            for records in batch.values():
                for record in records:
                    self.publish(record)

    # --- fan-out ------------------------------------------------------------------------------------------

    def publish(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.position[record.partition] = record.offset + 1
        item = item_of(record, "notifications-stream")
        if item is None:
            return
        self.remember(item)
        for subscriber in self.everyone:
            subscriber.offer(item)
        for subscriber in self.by_account.get(item.aggregate_id, ()):
            subscriber.offer(item)

    def remember(self, item: Item) -> None:
        if self.settings.notification_history == 0:
            self.complete_from[item.partition] = item.offset + 1
            return
        history = self.history[item.partition]
        if len(history) >= self.settings.notification_history:
            self.complete_from[item.partition] = history.popleft().offset + 1
        history.append(item)

    def full(self) -> bool:
        return self.streams >= self.settings.notification_streams_max

    def open(self, accounts: frozenset[str] | None, begin: Position | None, until: float | None = None) -> Stream:
        """A stream of what `accounts` (None: everything) want from `begin` (None: from now) on.

        Raises Exhausted at the stream cap, or when its backlog needs Kafka and the replay cap is
        reached. Nothing awaits in here, so the caps hold however many open at once.
        """
        if self.full():
            raise Exhausted("this server is at its limit of notification streams")
        subscriber, upto = self.subscribe(accounts)
        begin = dict(upto) if begin is None else begin
        backlog, missing = self.from_history(begin, upto)
        if missing and self.replays >= self.settings.notification_replays_max:
            self.unsubscribe(subscriber)
            raise Exhausted("too many streams are replaying from Kafka")
        self.streams += 1
        NOTIFICATION_STREAMS.set(self.streams)
        self.replays += bool(missing)
        return Stream(self, subscriber, begin, upto, backlog, missing, until)

    def subscribe(self, accounts: frozenset[str] | None) -> tuple[Subscriber, Position]:
        """A new stream's queue, and the position from which it gets everything it wants."""
        subscriber = Subscriber(self.settings.notification_buffer, accounts)
        if accounts is None:
            self.everyone.add(subscriber)
        else:
            for account in accounts:
                self.by_account.setdefault(account, set()).add(subscriber)
        return subscriber, dict(self.position)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.everyone.discard(subscriber)
        for account in subscriber.accounts or ():
            followers = self.by_account.get(account)
            if followers is not None:
                followers.discard(subscriber)
                if not followers:
                    del self.by_account[account]

    # --- backlog ------------------------------------------------------------------------------------------

    def from_history(self, start: Position, upto: Position) -> tuple[list[Item], list[int]]:
        """What the history holds of [start, upto), and the partitions it reaches back too little for."""
        items: list[Item] = []
        missing = []
        for partition, until in upto.items():
            begin = start[partition]
            if begin >= until:
                continue
            if begin < self.complete_from[partition]:
                missing.append(partition)
            else:
                items.extend(i for i in self.history[partition] if begin <= i.offset < until)
        return items, missing

    async def from_kafka(self, start: Position, upto: Position, partitions: Iterable[int]) -> AsyncIterator[Item]:
        """Every notification of these partitions in [start, upto), read by a consumer of its own.

        A position older than the topic's retention resumes at its oldest notification (the
        consumer resets to the earliest offset): what is gone is gone.
        """
        consumer = self.new_consumer(auto_offset_reset="earliest")
        try:
            await consumer.start()  # inside: a start that fails half-way has connections to close too
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, start[tp.partition])
            remaining = set(tps)
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=500)
                for tp, records in batch.items():
                    for record in records:
                        if record.offset < upto[tp.partition] and (item := item_of(record, "notifications-replay")):
                            yield item
                for tp in list(remaining):
                    if await consumer.position(tp) >= upto[tp.partition]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()
