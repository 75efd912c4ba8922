"""What sealing personal fields costs (docs/privacy.md), measured inside `make bench`.

- Writes: a 64-client closed loop of deposits that carry a reference (a personal
  field: sealed at the API, opened and sealed again by the processor, opened by
  the projector), with sealing off and on, alternated twice on fresh namespaces
  so a drift of the machine shows as a difference between the repeats.
- Rebuilds: the ledger (the read model that holds references) rebuilt from the
  same number of deposits whose references are plain (sealing off, as before it
  existed), then sealed (each opened with its account's key on the way).

The ratios (on / off) are what to read: the target is at most 10% fewer commands/s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaProducer

from app.config import Settings
from app.db import create_engine
from app.eventstore.kafka import connection
from app.eventstore.partitioner import partition_for
from app.privacy.key_encryption import KeyEncryptionKeys
from app.privacy.key_store import KeyStore
from app.privacy.sealing import seal
from bench.projection import account_events
from bench.setup import bench_kek, bench_settings, delete_namespace_topics, drop_database
from bench.write_side import alternated, ratios
from projections.rebuild import rebuild
from projections.registry import PROJECTIONS

DEPOSIT_WITH_REFERENCE = '{"amount":1,"reference":"bench deposit"}'
REFERENCE = "bench deposit"


@contextlib.contextmanager
def deposits_with_a_reference() -> Iterator[None]:
    """The load generators (subprocesses) read the deposit body from the environment."""
    before = os.environ.get("BENCH_DEPOSIT_BODY")
    os.environ["BENCH_DEPOSIT_BODY"] = DEPOSIT_WITH_REFERENCE
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("BENCH_DEPOSIT_BODY", None)
        else:
            os.environ["BENCH_DEPOSIT_BODY"] = before


async def measure_privacy(plan: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    with deposits_with_a_reference():
        writes = await alternated(
            "sealing", {"off": {"privacy_keks": ""}, "on": {"privacy_keks": bench_kek()}}, plan["accounts"]
        )
    pairs = ratios(writes, "on", "off")
    say(f"  sealing on / off at 64 clients: {', '.join(f'{ratio:.3f}' for ratio in pairs)}")
    rebuilds = await rebuild_rates(plan["privacy_events"], say)
    return {
        "writes": writes,
        "on_off_ratios": pairs,
        # The pairs' mean: one pair alone can land on a slow second of a shared machine.
        "on_off_ratio": sum(pairs) / len(pairs),
        "rebuilds": rebuilds,
    }


async def rebuild_rates(events: int, say: Callable[[str], None]) -> dict[str, Any]:
    rates: dict[str, Any] = {}
    for value in ("plain", "sealed"):
        # Plain: sealing off, as before it existed; sealed: every reference opened on the way.
        settings = await bench_settings(privacy_keks=bench_kek() if value == "sealed" else "")
        try:
            started = time.monotonic()
            produced = await produce_deposits(settings, events, sealed=value == "sealed")
            say(f"  {produced:,} deposits with {value} references produced in {time.monotonic() - started:.1f}s")
            engine = create_engine(settings)
            try:
                report = await rebuild(settings, engine, PROJECTIONS["ledger"])
            finally:
                await engine.dispose()
            rates[value] = {"events": report.events, "seconds": report.seconds, "events_per_s": report.events_per_s}
            say(f"  ledger rebuilt from {value} references: {report.events_per_s:,.0f} events/s")
        finally:
            with contextlib.suppress(Exception):
                await delete_namespace_topics(settings)
            await drop_database(settings)
    rates["sealed_over_plain"] = rates["sealed"]["events_per_s"] / rates["plain"]["events_per_s"]
    return rates


async def produce_deposits(settings: Settings, total: int, *, sealed: bool, per_account: int = 100) -> int:
    """Accounts opened and credited, each deposit with a reference: sealed under the account's key
    (created in the key store, as the API would) or plain."""
    producer = AIOKafkaProducer(**connection(settings), acks="all", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    keys = KeyStore(settings, KeyEncryptionKeys.parse(settings.privacy_keks or bench_kek()), producer)
    await keys.start()
    produced = 0
    try:
        while produced < total:
            account_id = str(uuid.uuid4())
            key = await keys.sealing_key(account_id) if sealed else None
            for event in account_events(account_id, min(per_account, total - produced)):
                if event.type == "FundsDeposited":
                    plain = REFERENCE
                    reference = plain if key is None else seal(plain, subject_id=account_id, field="reference", key=key)
                    event = dataclasses.replace(event, data={**event.data, "reference": reference})
                await producer.send(
                    settings.topic("events"),
                    event.encode(),
                    key=account_id.encode(),
                    partition=partition_for(account_id, settings.partitions),
                    headers=event.headers(),
                )
                produced += 1
        await producer.flush()
    finally:
        await keys.stop()
        await producer.stop()
    return produced
