"""The notification hub's fan-out, buffers, caps and resumes, in memory (no Kafka: records are made here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from app.api.notification_hub import Exhausted, Item, NotificationHub, Stream, item_of
from app.config import Settings
from app.eventstore.position import Position

PARTITIONS = 2


def record(
    partition: int, offset: int, aggregate_id: str = "acc-1", value: bytes | None = None
) -> ConsumerRecord[bytes, bytes]:
    body = (
        value
        if value is not None
        else orjson.dumps({"type": "FundsDeposited", "aggregate_id": aggregate_id, "version": offset})
    )
    return ConsumerRecord("ns.notifications", partition, offset, 0, 0, None, body, None, len(body), 0, [])


def hub(**settings: object) -> NotificationHub:
    made = NotificationHub(Settings(partitions=PARTITIONS, **settings))  # type: ignore[arg-type]
    made.begin_at({p: 0 for p in range(PARTITIONS)})
    return made


async def take(stream: Stream, count: int) -> list[Item]:
    items: list[Item] = []
    async for item in stream.items(heartbeat_s=0.05):
        if item is not None:
            items.append(item)
        if len(items) == count:
            break
    return items


def test_a_notification_is_serialised_once_and_junk_is_skipped() -> None:
    item = item_of(record(0, 7, value=b'{"type":"FundsDeposited","aggregate_id":"a","event_id":"e-1"}'), "test")
    assert item is not None
    assert (item.kind, item.aggregate_id, item.offset) == (b"FundsDeposited", "a", 7)
    assert orjson.loads(item.data)["event_id"] == "e-1"
    assert item_of(record(0, 8, value=b'{"not":"an event"'), "test") is None
    assert item_of(record(0, 8, value=b'["a list"]'), "test") is None
    assert item_of(record(0, 8, value=b'{"type":"x\\ny","aggregate_id":"a"}'), "test") is None  # would end a frame
    injected = item_of(record(0, 8, value=b'{"type":"T","aggregate_id":"a",\n"d":"a\\n\\nevent: forged"}'), "test")
    assert injected is not None and b"\n" not in injected.data


async def test_service_streams_get_everything_and_user_streams_only_their_accounts() -> None:
    notifications = hub()
    everything = notifications.open(None, None)
    alice = notifications.open(frozenset({"alice-1"}), None)
    for offset, account in enumerate(["alice-1", "bob-1", "alice-1"]):
        notifications.publish(record(offset % PARTITIONS, offset, account))
    assert [i.aggregate_id for i in await take(everything, 3)] == ["alice-1", "bob-1", "alice-1"]
    assert [i.aggregate_id for i in await take(alice, 2)] == ["alice-1", "alice-1"]
    assert alice.cursor == {0: 3, 1: 0}  # bob's notification at 1:1 was never alice's


async def test_a_users_backlog_from_the_history_holds_only_their_accounts_and_its_ids_pass_the_rest() -> None:
    notifications = hub(notification_history=100)
    for partition, offset, account in [(0, 0, "bob-1"), (1, 0, "alice-1"), (0, 1, "alice-1"), (1, 1, "bob-1")]:
        notifications.publish(record(partition, offset, account))
    alice = notifications.open(frozenset({"alice-1"}), {0: 0, 1: 0})  # from the beginning
    assert not alice.missing  # all of it from the history: no Kafka
    notifications.publish(record(0, 2, "alice-1"))
    got = await take(alice, 3)
    assert [(i.partition, i.offset, i.aggregate_id) for i in got] == [
        (0, 1, "alice-1"),
        (1, 0, "alice-1"),
        (0, 2, "alice-1"),
    ]
    assert alice.cursor == {0: 3, 1: 2}  # past Bob's too: a resume from here neither repeats nor skips


async def test_a_users_backlog_replayed_from_kafka_holds_only_their_accounts_and_its_ids_pass_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notifications = hub(notification_history=0)
    published = [record(0, 0, "bob-1"), record(0, 1, "alice-1"), record(1, 0, "bob-1")]
    for one in published:
        notifications.publish(one)
    in_kafka = [item for one in published if (item := item_of(one, "test")) is not None]

    async def from_kafka(start: Position, upto: Position, partitions: Iterable[int]) -> AsyncIterator[Item]:
        for item in in_kafka:  # what a consumer of its own reads: every account's
            if item.partition in partitions and start[item.partition] <= item.offset < upto[item.partition]:
                yield item

    monkeypatch.setattr(notifications, "from_kafka", from_kafka)
    alice = notifications.open(frozenset({"alice-1"}), {0: 0, 1: 0})
    assert alice.missing == [0, 1]
    notifications.publish(record(1, 1, "alice-1"))
    got = await take(alice, 2)
    assert [(i.partition, i.offset, i.aggregate_id) for i in got] == [(0, 1, "alice-1"), (1, 1, "alice-1")]
    assert alice.cursor == {0: 2, 1: 2}
    assert notifications.replays == 0  # the replay is over and gave its place back


async def test_a_stream_too_slow_for_its_buffer_ends_after_what_it_had_and_resumes_exactly() -> None:
    notifications = hub(notification_buffer=3, notification_history=100)
    slow = notifications.open(None, None)
    for offset in range(5):
        notifications.publish(record(0, offset))
    assert slow.subscriber.overflowed
    got = [item async for item in slow.items(heartbeat_s=0.05)]  # ends by itself: no heartbeat, no wait
    assert [i.offset for i in got if i is not None] == [0, 1, 2]
    slow.close()
    resumed = notifications.open(None, dict(slow.cursor))
    assert [i.offset for i in await take(resumed, 2)] == [3, 4]
    assert notifications.streams == 1


async def test_a_resume_from_within_the_history_needs_no_kafka_and_one_from_before_it_does() -> None:
    notifications = hub(notification_history=2)
    for offset in range(4):
        notifications.publish(record(0, offset))
    assert notifications.complete_from[0] == 2  # offsets 0 and 1 fell out of the history
    recent = notifications.open(None, {0: 2, 1: 0})
    assert (recent.missing, [i.offset for i in recent.backlog]) == ([], [2, 3])
    older = notifications.open(None, {0: 1, 1: 0})
    assert older.missing == [0] and notifications.replays == 1
    older.close()
    older.close()  # closing twice gives the place back once
    assert (notifications.replays, notifications.streams) == (0, 1)


def test_the_stream_and_replay_caps_refuse_without_counting_the_refused() -> None:
    notifications = hub(notification_streams_max=2, notification_replays_max=1, notification_history=0)
    notifications.publish(record(0, 0))
    notifications.open(None, {0: 0, 1: 0})  # before the (empty) history: a replay
    with pytest.raises(Exhausted):
        notifications.open(None, {0: 0, 1: 0})
    notifications.open(frozenset({"a"}), None)
    with pytest.raises(Exhausted):
        notifications.open(None, None)
    assert (notifications.streams, notifications.replays) == (2, 1)
    assert len(notifications.everyone) == 1 and set(notifications.by_account) == {"a"}


async def test_a_closed_stream_leaves_the_fan_out() -> None:
    notifications = hub()
    alice = notifications.open(frozenset({"alice-1"}), None)
    alice.close()
    notifications.publish(record(0, 0, "alice-1"))
    assert notifications.by_account == {} and not alice.subscriber.queue
    assert notifications.streams == 0


async def test_an_idle_stream_yields_heartbeats() -> None:
    stream = hub().open(None, None)
    items = stream.items(heartbeat_s=0.01)
    assert await asyncio.wait_for(anext(items), 1) is None


async def test_a_stream_ends_when_its_token_expires_after_what_it_had() -> None:
    notifications = hub()
    lasting = notifications.open(None, None, until=time.time() + 0.2)
    notifications.publish(record(0, 0))
    started = time.monotonic()
    got = [item async for item in lasting.items(heartbeat_s=0.05)]  # ends by itself
    assert [i.offset for i in got if i is not None] == [0]
    assert lasting.expired and 0.1 < time.monotonic() - started < 2
    assert not notifications.open(None, None).expired  # a service key's stream has no end of its own
