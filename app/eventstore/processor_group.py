"""Who decides what: the processor group's members, their command partitions and how far each has come.

Read from Kafka itself (the group coordinator's description and committed
offsets), so it shows what the brokers believe, not what a processor says of
itself: a processor that hangs keeps its partitions until its session times out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from app.config import Settings
from app.eventstore.kafka import admin_client


def commit_of(metadata: str) -> dict[str, int] | None:
    """What a processor stored with its committed offset (shard_writer.commit_metadata), if anything."""
    try:
        found = json.loads(metadata) if metadata else None
        return {"at": int(found["at"]), "batches": int(found["batches"])} if isinstance(found, dict) else None
    except (ValueError, KeyError, TypeError):
        return None  # an older processor's commit, or another tool's


@dataclass
class GroupView:
    state: str  # the coordinator's word for the group: Stable, PreparingRebalance, Empty, …
    members: list[str]
    owners: dict[int, str]  # command partition → the member it is assigned to


async def processors_view(settings: Settings, consumer: AIOKafkaConsumer) -> dict[str, Any]:
    admin = admin_client(settings)
    await admin.start()
    try:
        group = await group_view(settings, admin)
        committed = await admin.list_consumer_group_offsets(settings.processor_group)
    finally:
        await admin.close()
    owners = group.owners
    tps = [TopicPartition(settings.topic("commands"), p) for p in range(settings.partitions)]
    ends = await consumer.end_offsets(tps)
    partitions = []
    now = time.time() * 1000
    for tp in tps:
        done = committed.get(tp)
        offset = None if done is None or done.offset < 0 else done.offset
        end = ends.get(tp)
        commit = commit_of(done.metadata if done is not None else "")
        partitions.append(
            {
                "partition": tp.partition,
                "owner": owners.get(tp.partition),
                "committed": offset,
                "end": end,
                "lag": None if end is None else end - (offset or 0),
                # By the processor's clock against this process's: hosts are expected to keep time (NTP).
                "last_commit_age_s": None if commit is None else max(0.0, (now - commit["at"]) / 1000),
                "batches": None if commit is None else commit["batches"],
            }
        )
    return {"group_state": group.state, "members": group.members, "partitions": partitions}


async def group_view(settings: Settings, admin: AIOKafkaAdminClient) -> GroupView:
    """The processor group as its coordinator describes it: state, members and who owns which partition."""
    topic = settings.topic("commands")
    [description] = await admin.describe_consumer_groups([settings.processor_group])
    view = GroupView("unknown", [], {})
    for group in description.groups:
        view.state = group[2] or "unknown"
        for member in group[5]:
            client_id, host, assignment = member[1], member[2], member[4]
            name = f"{client_id}@{host.lstrip('/')}"
            view.members.append(name)
            if assignment:
                for assigned_topic, partitions in ConsumerProtocolMemberAssignment.decode(assignment).assignment:
                    if assigned_topic == topic:
                        view.owners.update((p, name) for p in partitions)
    view.members.sort()
    return view


async def owns_every_partition(settings: Settings) -> bool:
    """Whether the processor group is stable with every command partition assigned to a member."""
    admin = admin_client(settings)
    await admin.start()
    try:
        group = await group_view(settings, admin)
    finally:
        await admin.close()
    return group.state == "Stable" and len(group.owners) == settings.partitions
