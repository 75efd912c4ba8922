"""Where the data keys live: `<ns>.subject-keys`, a compacted topic, read whole and cached in memory.

Records, by key:

    data-key/<subject>/<key id>  WrappedKey JSON (app.privacy.key_encryption): a data key, wrapped by a KEK
    forgotten/<subject>          {"at": <ms>}: the subject asked to be forgotten (kept for good)
    kek/<kek id>                 {"fingerprint": …}: a KEK this deployment has wrapped keys with
    tick/<partition>             {"at": <ms>}: a periodic write, so that a quiet partition's segment rolls
    pseudonym-key/<key id>       WrappedKey JSON: the key end users' token subjects are pseudonymised with

A subject may hold several data keys. A key is created by whichever process first
needs one to seal (an API process, on the subject's first command); two processes
creating one at the same moment both succeed under different key ids, and no
value sealed under either is ever lost (one key per subject, keyed by subject,
would let compaction keep only the later one).

Forgetting writes a tombstone for each of the subject's data keys and the
`forgotten` record (`forget_records`): compaction removes the keys from the
broker's disk within the bound that docs/privacy.md derives from the topic's
settings, while the `forgotten` record, which holds no personal data, keeps the
subject forgotten after the tombstones themselves are gone (no key would be
created for it again). A KEK fingerprint check at start refuses a process whose
configured key under a known id is not the one this deployment used.

The pseudonym key keeps an end user's token subject (`sub`, a personal
identifier) out of every topic and table: the principal that commands, events
and audit rows carry is `user:` + HMAC-SHA256(pseudonym key, sub). It is one key
for the deployment, created by the first API process that needs it; if two
create one at once, every process uses the one written first to partition 0
(the lowest offset), so all agree, and it never changes (an Idempotency-Key's
scope and "who sent this command" depend on it). A KEK rotation rewraps it like
a data key.

Every process reads the whole topic at start (it is small: a wrapped key is about
a hundred bytes) and follows it; keys are unwrapped on first use and kept.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from app.config import Settings
from app.eventstore.kafka import connection
from app.eventstore.partitioner import partition_for
from app.privacy.key_encryption import KeyEncryptionKeys, WrappedKey
from app.privacy.sealing import new_data_key

log = logging.getLogger(__name__)

TOPIC = "subject-keys"
DATA_KEY, FORGOTTEN, KEK, TICK, PSEUDONYM_KEY = "data-key/", "forgotten/", "kek/", "tick/", "pseudonym-key/"
# The associated data a pseudonym key is wrapped under, in place of a subject id.
PSEUDONYMS = "pseudonyms"


class SubjectForgotten(Exception):
    """The subject asked to be forgotten: nothing personal of theirs is sealed (or stored) again."""

    def __init__(self, subject_id: str) -> None:
        super().__init__(f"subject {subject_id} has been forgotten")
        self.subject_id = subject_id


class KeyEncryptionKeyMismatch(RuntimeError):
    """The configured KEKs cannot open this deployment's data keys: the process must not start."""


class KeyStore:
    def __init__(self, settings: Settings, keks: KeyEncryptionKeys, producer: AIOKafkaProducer | None) -> None:
        """`producer` writes new data keys (acks=all); None for a process that only opens (a projector)."""
        self.settings, self.keks, self.producer = settings, keks, producer
        self.topic = settings.topic(TOPIC)
        self.wrapped: defaultdict[str, dict[str, WrappedKey]] = defaultdict(dict)  # subject → key id → wrapped
        self.unwrapped: dict[tuple[str, str], bytes] = {}
        self.forgotten: set[str] = set()
        self.fingerprints: dict[str, str] = {}  # KEK id → fingerprint, as recorded in the topic
        self.creating: dict[str, asyncio.Task[bytes]] = {}  # one creation per subject at a time, per process
        self.consumer = AIOKafkaConsumer(
            **connection(settings), isolation_level="read_committed", enable_auto_commit=False, group_id=None
        )
        self.follower: asyncio.Task[None] | None = None
        self.ticker: asyncio.Task[None] | None = None
        self.advanced = asyncio.Event()  # set (and replaced) after each fetch the follower applies
        # Keys of a forgotten subject found without their tombstone (below: `apply`), to destroy.
        self.orphans: set[tuple[str, str]] = set()
        # Pseudonym keys in the order partition 0 holds them: the first is the one everyone uses.
        self.pseudonym_keys: list[WrappedKey] = []
        self.pseudonym_secret: bytes | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, pseudonyms: bool = False) -> None:
        """Read the whole topic, check the KEKs against it, then follow it. With `pseudonyms` (an API
        process), have the pseudonym key ready before the first request."""
        await self.consumer.start()
        try:
            if self.topic not in await self.consumer.topics():
                raise KeyEncryptionKeyMismatch(f"topic {self.topic} does not exist: run `eventline topics create`")
            tps = [TopicPartition(self.topic, p) for p in range(self.settings.partitions)]
            self.consumer.assign(tps)
            await self.consumer.seek_to_beginning(*tps)
            await self.read_to(await self.consumer.end_offsets(tps))
            self.check_keks()
            await self.record_current_kek()
            await self.destroy_orphans()
            if pseudonyms:
                await self.ready_pseudonym_key(tps)
        except BaseException:
            await self.consumer.stop()
            raise
        self.follower = asyncio.create_task(self.follow(), name="subject-keys-follower")
        if self.producer is not None:
            self.ticker = asyncio.create_task(self.tick_every(self.tick_period_s()), name="subject-keys-ticker")

    async def stop(self) -> None:
        for task in (self.follower, self.ticker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.consumer.stop()

    # --- bounding how long a destroyed key stays on the broker's disk ------------------------------

    def tick_period_s(self) -> float:
        """As often as segments may roll (at least a second apart): docs/privacy.md adds it to the bound."""
        return max(1.0, self.settings.privacy_key_segment_ms / 1000)

    async def tick_every(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                await self.tick()
            except KafkaError as error:
                log.warning("subject keys: a tick was not written: %r", error)

    async def tick(self) -> None:
        """Append to every partition. The log cleaner never touches the active segment, and a segment
        rolls only when a record is appended after `segment.ms`: without these, a forget's tombstone in
        a quiet partition would wait for the next write there, and the key it destroys would stay on
        disk for as long."""
        assert self.producer is not None
        value = json.dumps({"at": int(time.time() * 1000)}).encode()
        for partition in range(self.settings.partitions):
            await self.producer.send(self.topic, value, key=f"{TICK}{partition}".encode(), partition=partition)
        await self.producer.flush()

    def check_keks(self) -> None:
        """Refuse a KEK set that cannot open what is stored: a wrong key under a known id, or a
        data key wrapped under an id no longer configured (a rotation's old key dropped too soon)."""
        for kek_id, recorded in sorted(self.fingerprints.items()):
            if kek_id in self.keks.ids and self.keks.fingerprint(kek_id) != recorded:
                raise KeyEncryptionKeyMismatch(
                    f"EVENTLINE_PRIVACY_KEKS: the key configured as {kek_id!r} (fingerprint "
                    f"{self.keks.fingerprint(kek_id)}) is not the one this deployment's data keys were wrapped "
                    f"with (fingerprint {recorded}); nothing was written"
                )
        used = {wrapped.kek_id for keys in self.wrapped.values() for wrapped in keys.values()}
        used |= {wrapped.kek_id for wrapped in self.pseudonym_keys}
        if missing := sorted(used - set(self.keks.ids)):
            raise KeyEncryptionKeyMismatch(
                f"EVENTLINE_PRIVACY_KEKS lacks {', '.join(map(repr, missing))}, which wrapped stored data keys: "
                "keep an old key listed until every data key is rewrapped; nothing was written"
            )

    async def record_current_kek(self) -> None:
        current = self.keks.current_id
        if current in self.fingerprints or self.producer is None:
            return
        value = json.dumps({"fingerprint": self.keks.fingerprint(current)}).encode()
        await self.producer.send_and_wait(self.topic, value, key=f"{KEK}{current}".encode(), partition=0)
        self.fingerprints[current] = self.keks.fingerprint(current)

    # --- reading the topic ---------------------------------------------------------------------

    async def follow(self) -> None:
        while True:
            try:
                batch = await self.consumer.getmany(timeout_ms=1000)
            except KafkaError as error:
                log.warning("subject keys: %r; retrying", error)
                await asyncio.sleep(1)
                continue
            for records in batch.values():
                for record in records:
                    self.apply(record)
            try:
                await self.destroy_orphans()
            except KafkaError as error:
                log.warning("subject keys: a forgotten subject's key was not destroyed yet: %r; retrying", error)
            # Every fetch may move the positions (past commit markers too), with or without records.
            self.advanced.set()
            self.advanced = asyncio.Event()

    async def read_to(self, ends: dict[TopicPartition, int]) -> None:
        """Apply records until every partition's position reaches `ends` (at start, before following)."""
        while await self.behind(ends):
            for records in (await self.consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    self.apply(record)

    async def caught_up(self, timeout_s: float = 5.0) -> None:
        """Return once every record written before this call is applied: for a reader that meets a
        value sealed under a key another process created moments ago."""
        ends = await self.consumer.end_offsets(list(self.consumer.assignment()))
        async with asyncio.timeout(timeout_s):
            while await self.behind(ends):
                await self.advanced.wait()

    async def behind(self, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await self.consumer.position(tp) < end:
                return True
        return False

    def apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        key = record.key.decode() if record.key is not None else ""
        try:
            if key.startswith(DATA_KEY):
                subject, key_id = key.removeprefix(DATA_KEY).rsplit("/", 1)
                if record.value is None:
                    self.wrapped[subject].pop(key_id, None)
                    self.unwrapped.pop((subject, key_id), None)
                    self.orphans.discard((subject, key_id))
                elif subject in self.forgotten:
                    # Created by a process that had not seen the forget yet: no one may use it, and
                    # without a tombstone compaction would keep it for good.
                    self.orphans.add((subject, key_id))
                else:
                    self.wrapped[subject][key_id] = WrappedKey.decode(record.value)
            elif key.startswith(FORGOTTEN) and record.value is not None:
                subject = key.removeprefix(FORGOTTEN)
                # Every key still here was written before the forget but not known to the processor
                # that decided it (created an instant earlier by another process): destroyed too.
                self.orphans.update((subject, key_id) for key_id in self.wrapped.get(subject, {}))
                self.forget_locally(subject)
            elif key.startswith(KEK) and record.value is not None:
                self.fingerprints[key.removeprefix(KEK)] = str(json.loads(record.value)["fingerprint"])
            elif key.startswith(PSEUDONYM_KEY) and record.value is not None and record.partition == 0:
                self.pseudonym_keys.append(WrappedKey.decode(record.value))
            elif key.startswith(TICK):
                pass
            else:
                raise ValueError("an unknown kind of record")
        except (ValueError, KeyError, TypeError) as error:
            # Never the value: it may be a wrapped key. The offset is enough to find it.
            log.error("subject keys: skipped the record at %s:%d: %s", record.partition, record.offset, error)

    # --- using keys ----------------------------------------------------------------------------

    def keys_of(self, subject_id: str) -> list[bytes]:
        """The subject's data keys, unwrapped; none once forgotten (or never created)."""
        if subject_id in self.forgotten:
            return []
        keys = []
        for key_id, wrapped in self.wrapped.get(subject_id, {}).items():
            if (subject_id, key_id) not in self.unwrapped:
                self.unwrapped[(subject_id, key_id)] = self.keks.unwrap(wrapped, subject_id=subject_id)
            keys.append(self.unwrapped[(subject_id, key_id)])
        return keys

    def is_forgotten(self, subject_id: str) -> bool:
        return subject_id in self.forgotten

    async def sealing_key(self, subject_id: str) -> bytes:
        """A data key to seal the subject's values with, created (and stored) on first need."""
        if subject_id in self.forgotten:
            raise SubjectForgotten(subject_id)
        if keys := self.keys_of(subject_id):
            return keys[0]
        if subject_id not in self.creating:
            self.creating[subject_id] = asyncio.create_task(self.create(subject_id))
        try:
            return await asyncio.shield(self.creating[subject_id])
        finally:
            if self.creating.get(subject_id) is not None and self.creating[subject_id].done():
                del self.creating[subject_id]

    async def create(self, subject_id: str) -> bytes:
        if self.producer is None:
            raise RuntimeError("this key store only reads keys; it cannot create one")
        key, key_id = new_data_key(), uuid.uuid4().hex
        wrapped = self.keks.wrap(key, subject_id=subject_id)
        record_key = f"{DATA_KEY}{subject_id}/{key_id}".encode()
        # Stored (acks=all) before anything is sealed with it: no value can outlive the key's record.
        await self.producer.send_and_wait(
            self.topic, wrapped.encode(), key=record_key, partition=self.partition_of(subject_id)
        )
        self.wrapped[subject_id][key_id] = wrapped
        self.unwrapped[(subject_id, key_id)] = key
        return key

    # --- pseudonyms for end users ----------------------------------------------------------------

    async def ready_pseudonym_key(self, tps: list[TopicPartition]) -> None:
        """Unwrap the deployment's pseudonym key, creating it first if there is none yet."""
        if not self.pseudonym_keys:
            if self.producer is None:
                raise RuntimeError("this key store only reads keys; it cannot create the pseudonym key")
            wrapped = self.keks.wrap(new_data_key(), subject_id=PSEUDONYMS)
            record_key = f"{PSEUDONYM_KEY}{uuid.uuid4().hex}".encode()
            await self.producer.send_and_wait(self.topic, wrapped.encode(), key=record_key, partition=0)
            # Read back to the end: another process may have written one first, and that one wins.
            await self.read_to(await self.consumer.end_offsets(tps))
        self.pseudonym_secret = self.keks.unwrap(self.pseudonym_keys[0], subject_id=PSEUDONYMS)

    def pseudonym(self, identifier: str) -> str:
        """A stable stand-in for a personal identifier (an end user's token subject) that names no one
        without this deployment's pseudonym key."""
        if self.pseudonym_secret is None:
            raise RuntimeError("the pseudonym key is not ready: start the key store with pseudonyms=True")
        digest = hmac.new(self.pseudonym_secret, identifier.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def partition_of(self, subject_id: str) -> int:
        return partition_for(subject_id, self.settings.partitions)

    def forget_locally(self, subject_id: str) -> None:
        """Know the subject as forgotten now: its forget was committed (by this process's own
        transaction, or read from the topic), so no key of theirs is used here again."""
        self.forgotten.add(subject_id)
        for key_id in self.wrapped.pop(subject_id, {}):
            self.unwrapped.pop((subject_id, key_id), None)

    async def destroy_orphans(self) -> None:
        """Write a tombstone for each key of a forgotten subject that had none (a process that only
        reads keys leaves that to the processes that write them). Writing one twice is harmless."""
        if self.producer is None or not self.orphans:
            return
        orphans = sorted(self.orphans)
        for subject_id, key_id in orphans:
            record_key = f"{DATA_KEY}{subject_id}/{key_id}".encode()
            await self.producer.send(self.topic, None, key=record_key, partition=self.partition_of(subject_id))
        await self.producer.flush()
        self.orphans.difference_update(orphans)
        log.info("subject keys: destroyed %d key(s) of forgotten subjects left without a tombstone", len(orphans))

    def forget_records(self, subject_id: str, at_ms: int) -> list[tuple[bytes, bytes | None]]:
        """What forgetting the subject writes (into `partition_of(subject_id)`): a tombstone for each
        data key known here, then the `forgotten` record."""
        tombstones: list[tuple[bytes, bytes | None]] = [
            (f"{DATA_KEY}{subject_id}/{key_id}".encode(), None) for key_id in sorted(self.wrapped.get(subject_id, {}))
        ]
        return [*tombstones, (f"{FORGOTTEN}{subject_id}".encode(), json.dumps({"at": at_ms}).encode())]
