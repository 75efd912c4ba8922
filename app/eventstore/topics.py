"""The topics of the event store: their names, partition counts and configs.

`create_topics` is idempotent; `verify_topics` refuses to run on a deployment
whose topics disagree with the settings. A changed partition count would move
aggregates to other partitions (key → partition is murmur2 mod P), so the
single-writer guarantee and every stored position would silently break.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from app.config import Settings
from app.eventstore.kafka import admin_client, wait_for_kafka

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


class TopicMismatch(RuntimeError):
    """Existing topics differ from what the settings require."""


def topic_specs(settings: Settings) -> list[TopicSpec]:
    p, r = settings.partitions, settings.result_partitions
    min_isr = str(settings.min_insync_replicas)
    return [
        TopicSpec(
            settings.topic("commands"),
            p,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(settings.command_retention_ms),
            },
        ),
        TopicSpec(
            settings.topic("events"),
            p,
            {
                "cleanup.policy": "delete",
                "retention.ms": "-1",
                "retention.bytes": "-1",
                "min.insync.replicas": min_isr,
            },
        ),
        TopicSpec(
            settings.topic("aggregates"),
            p,
            {
                "cleanup.policy": "compact",
                "min.insync.replicas": min_isr,
            },
        ),
        TopicSpec(
            settings.topic("command-results"),
            r,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(settings.result_retention_ms),
            },
        ),
        TopicSpec(
            settings.topic("notifications"),
            p,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(settings.notification_retention_ms),
            },
        ),
        TopicSpec(
            settings.topic("subject-keys"),
            p,
            {
                "cleanup.policy": "compact",
                "min.insync.replicas": min_isr,
                "segment.ms": str(settings.privacy_key_segment_ms),
                "max.compaction.lag.ms": str(settings.privacy_key_compaction_lag_ms),
                # A compacted segment's old file (with the destroyed keys) is deleted a second after,
                # not the broker's default minute.
                "file.delete.delay.ms": "1000",
            },
        ),
    ]


def co_located(brokers: list[int], partitions: int, replication_factor: int) -> dict[int, list[int]]:
    """Replicas of partition i: the same brokers, in the same order, in every topic.

    A transaction of command partition p writes events, aggregates and notifications p
    (and reads commands p): placed alike, one broker leads all of them, and a broker that
    dies pauses only the partitions it led rather than nearly every transaction. A failover
    keeps them together too, because the new leader is the first live in-sync replica of
    the same list.
    """
    ordered = sorted(brokers)
    if replication_factor > len(ordered):
        raise TopicMismatch(f"replication factor {replication_factor} needs as many brokers; {len(ordered)} are up")
    n = len(ordered)
    return {i: [ordered[(i + k) % n] for k in range(replication_factor)] for i in range(partitions)}


async def new_topic(admin: AIOKafkaAdminClient, spec: TopicSpec, replication_factor: int) -> NewTopic:
    if replication_factor == 1:
        return NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.configs)
    placement = co_located(await brokers_up(admin, replication_factor), spec.partitions, replication_factor)
    return NewTopic(spec.name, -1, -1, replica_assignments=placement, topic_configs=spec.configs)


async def brokers_up(admin: AIOKafkaAdminClient, wanted: int, budget_s: float = 30.0) -> list[int]:
    """The brokers' ids, once `wanted` of them are registered (a cluster that is still starting
    lists fewer), or as many as there are when the budget runs out."""
    deadline = time.monotonic() + budget_s
    while True:
        brokers = [int(broker["node_id"]) for broker in (await admin.describe_cluster())["brokers"]]
        if len(brokers) >= wanted or time.monotonic() > deadline:
            return brokers
        log.info("waiting for %d brokers to create topics on; %d are up", wanted, len(brokers))
        await asyncio.sleep(0.5)


async def create_topics(admin: AIOKafkaAdminClient, settings: Settings) -> list[str]:
    """Create the missing topics and return their names; existing ones are left alone."""
    specs = topic_specs(settings)
    existing = set(await admin.list_topics())
    missing = [spec for spec in specs if spec.name not in existing]
    for spec in missing:
        try:
            await admin.create_topics([await new_topic(admin, spec, settings.replication_factor)])
        except TopicAlreadyExistsError:
            pass  # another process created it between list and create
    await _until_visible(admin, [spec.name for spec in missing])
    return [spec.name for spec in missing]


async def _until_visible(admin: AIOKafkaAdminClient, names: list[str], budget_s: float = 30.0) -> None:
    """Wait until new topics show up in metadata: creation returns before it propagates."""
    deadline = time.monotonic() + budget_s
    while names and time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        if all(topic["error_code"] == 0 and topic["partitions"] for topic in described):
            return
        await asyncio.sleep(0.1)


async def verify_topics(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    """Raise TopicMismatch naming every topic that is missing or differs from its spec."""
    specs = topic_specs(settings)
    problems = await _partition_problems(admin, specs) + await _config_problems(admin, specs)
    if problems:
        raise TopicMismatch("Kafka topics do not match the settings:\n  - " + "\n  - ".join(problems))


async def _partition_problems(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[str]:
    described = await admin.describe_topics([spec.name for spec in specs])
    counts = {topic["topic"]: len(topic["partitions"]) for topic in described if topic["error_code"] == 0}
    problems = []
    for spec in specs:
        actual = counts.get(spec.name)
        if actual is None:
            problems.append(f"{spec.name} does not exist (run `eventline topics create`)")
        elif actual != spec.partitions:
            problems.append(
                f"{spec.name} has {actual} partitions but the settings say {spec.partitions}; "
                "the partition count is fixed for the life of a deployment"
            )
    return problems


async def _config_problems(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[str]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, spec.name) for spec in specs]
    try:
        responses = await admin.describe_configs(resources)
    except Exception as error:  # a missing topic already made a partition problem
        log.debug("describe_configs failed: %s", error)
        return []
    actual = _configs_by_topic(responses)
    problems = []
    for spec in specs:
        for key, wanted in spec.configs.items():
            have = actual.get(spec.name, {}).get(key)
            if have is not None and have != wanted:
                problems.append(f"{spec.name} has {key}={have}, expected {wanted}")
    return problems


def _configs_by_topic(responses: list) -> dict[str, dict[str, str]]:  # type: ignore[type-arg]
    result: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            error_code, _message, _type, name, entries = resource[:5]
            if error_code == 0:
                result[name] = {entry[0]: entry[1] for entry in entries}
    return result


async def check_topics(settings: Settings) -> None:
    """Wait for Kafka, then refuse to run against topics that are missing or differ from their specs."""
    await wait_for_kafka(settings)
    admin = admin_client(settings)
    await admin.start()
    try:
        await verify_topics(admin, settings)
    finally:
        await admin.close()
