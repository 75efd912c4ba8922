"""The data keys' store on a real broker: created once, read by every process, destroyed by a forget,
and refused to a process whose key-encryption keys cannot open it."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.config import Settings
from app.eventstore.kafka import connection
from app.privacy.key_encryption import KeyEncryptionKeys
from app.privacy.key_store import KeyEncryptionKeyMismatch, KeyStore, SubjectForgotten
from app.privacy.sealing import open_sealed, seal
from tests.support import broker_files_holding, fresh_namespace
from tests.waiting import eventually


def kek(kek_id: str) -> str:
    return f"{kek_id}:{base64.b64encode(os.urandom(32)).decode()}"


K1, K2 = kek("k1"), kek("k2")


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings)


@pytest.fixture
async def producer(ns: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(**connection(ns), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


StoreOf = Callable[..., Any]


@pytest.fixture
async def stores(ns: Settings, producer: AIOKafkaProducer) -> AsyncIterator[StoreOf]:
    """Starts key stores (each as a process of its own would have it) and stops them all at the end."""
    started: list[KeyStore] = []

    async def store(spec: str = K1, writes: bool = True) -> KeyStore:
        key_store = KeyStore(ns, KeyEncryptionKeys.parse(spec), producer if writes else None)
        await key_store.start()
        started.append(key_store)
        return key_store

    yield store
    for key_store in started:
        await key_store.stop()


async def ends(ns: Settings) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**connection(ns))
    await consumer.start()
    try:
        topic = ns.topic("subject-keys")
        ends: dict[TopicPartition, int] = await consumer.end_offsets(
            [TopicPartition(topic, p) for p in range(ns.partitions)]
        )
        return ends
    finally:
        await consumer.stop()


async def test_a_key_created_by_one_process_opens_what_it_sealed_in_another(stores: StoreOf) -> None:
    first: KeyStore = await stores()
    following: KeyStore = await stores()  # already running when the key is created
    key = await first.sealing_key("subject-1")
    token = seal("Ada Lovelace", subject_id="subject-1", field="owner", key=key)
    later: KeyStore = await stores()  # starts after: reads it from the topic
    await following.caught_up()
    for other in (following, later):
        assert [
            open_sealed(token, subject_id="subject-1", field="owner", key=k) for k in other.keys_of("subject-1")
        ] == ["Ada Lovelace"]
    assert await first.sealing_key("subject-1") == key  # created once, then reused


async def test_two_processes_creating_a_subjects_first_key_at_once_lose_neither(stores: StoreOf) -> None:
    one: KeyStore = await stores()
    two: KeyStore = await stores()
    keys = await asyncio.gather(*(store.sealing_key("subject-2") for store in (one, two) for _ in range(3)))
    sealed = {seal("both", subject_id="subject-2", field="body", key=key) for key in keys}
    reader: KeyStore = await stores(writes=False)
    assert set(reader.keys_of("subject-2")) == set(keys)
    assert len(set(keys)) <= 2  # one creation per process, however many asked at once
    for token in sealed:
        opened = set()
        for key in reader.keys_of("subject-2"):
            try:
                opened.add(open_sealed(token, subject_id="subject-2", field="body", key=key))
            except ValueError:
                continue
        assert opened == {"both"}


async def test_a_forgotten_subject_has_no_key_anywhere_and_is_given_none_again(
    ns: Settings, producer: AIOKafkaProducer, stores: StoreOf
) -> None:
    holder: KeyStore = await stores()
    await holder.sealing_key("subject-3")
    await holder.sealing_key("subject-4")  # a neighbour, who stays
    for key, value in holder.forget_records("subject-3", at_ms=1):
        await producer.send_and_wait(
            ns.topic("subject-keys"), value, key=key, partition=holder.partition_of("subject-3")
        )
    await holder.caught_up()
    fresh: KeyStore = await stores()
    for store in (holder, fresh):
        assert store.keys_of("subject-3") == [] and store.is_forgotten("subject-3")
        with pytest.raises(SubjectForgotten):
            await store.sealing_key("subject-3")
        assert len(store.keys_of("subject-4")) == 1 and not store.is_forgotten("subject-4")


async def test_a_wrong_or_missing_key_encryption_key_is_refused_at_start_and_writes_nothing(
    ns: Settings, producer: AIOKafkaProducer, stores: StoreOf
) -> None:
    await (await stores(K1)).sealing_key("subject-5")
    before = await ends(ns)
    wrong = kek("k1")  # the same id, another key
    attempts: list[Coroutine[Any, Any, KeyStore]] = [stores(wrong), stores(K2)]  # K2 alone lacks k1
    messages = []
    for attempt in attempts:
        with pytest.raises(KeyEncryptionKeyMismatch) as refused:
            await attempt
        messages.append(str(refused.value))
    assert "not the one" in messages[0] and "lacks 'k1'" in messages[1]
    for spec in (wrong, K1, K2):
        assert spec.split(":", 1)[1] not in " ".join(messages)
    assert await ends(ns) == before


async def test_a_rotated_key_encryption_key_opens_old_data_keys_and_wraps_new_ones(stores: StoreOf) -> None:
    old = await (await stores(K1)).sealing_key("subject-6")
    rotated: KeyStore = await stores(f"{K2},{K1}")
    assert rotated.keys_of("subject-6") == [old]
    await rotated.sealing_key("subject-7")
    assert {w.kek_id for w in rotated.wrapped["subject-7"].values()} == {"k2"}
    assert {w.kek_id for w in rotated.wrapped["subject-6"].values()} == {"k1"}


async def test_a_forgotten_key_leaves_the_brokers_disk_within_the_documented_bound(
    settings: Settings, producer: AIOKafkaProducer
) -> None:
    """Small roll and compaction settings stand in for the deployment's; the bound is theirs plus
    the tick period, the broker's cleaner back-off (15 s) and the file deletion delay (docs/privacy.md)."""
    ns = await fresh_namespace(settings, privacy_key_segment_ms=200, privacy_key_compaction_lag_ms=200)
    producer = AIOKafkaProducer(**connection(ns), acks="all", enable_idempotence=True)
    await producer.start()
    store = KeyStore(ns, KeyEncryptionKeys.parse(K1), producer)
    await store.start()
    try:
        await store.sealing_key("forgotten-one")
        await store.sealing_key("remaining-one")
        gone, kept = (next(iter(store.wrapped[s].values())).encode() for s in ("forgotten-one", "remaining-one"))
        assert broker_files_holding(ns, gone, "subject-keys") and broker_files_holding(
            ns, kept, "subject-keys"
        )  # the scan finds a key that is there
        for key, value in store.forget_records("forgotten-one", at_ms=1):
            await producer.send_and_wait(
                ns.topic("subject-keys"), value, key=key, partition=store.partition_of("forgotten-one")
            )
        bound_s = 0.2 + store.tick_period_s() + 0.2 + 15 + 1
        started = time.monotonic()
        await eventually(
            lambda: asyncio.to_thread(broker_files_holding, ns, gone, "subject-keys"),
            [],
            timeout=bound_s + 30,
            interval=0.5,
        )
        took = time.monotonic() - started
    finally:
        await store.stop()
        await producer.stop()
    assert broker_files_holding(ns, kept, "subject-keys"), "compaction kept the other subject's key"
    assert took < bound_s + 10, f"{took:.1f} s against a bound of {bound_s:.1f} s"
    fresh = KeyStore(ns, KeyEncryptionKeys.parse(K1), None)
    await fresh.start()
    try:
        assert fresh.is_forgotten("forgotten-one") and fresh.keys_of("forgotten-one") == []
        assert len(fresh.keys_of("remaining-one")) == 1
    finally:
        await fresh.stop()
