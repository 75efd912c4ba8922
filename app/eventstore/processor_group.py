"""Who decides what: the processor group's members, their command partitions and how far each has come.

Read from Kafka itself (the group coordinator's description and committed
offsets), so it shows what the brokers believe, not what a processor says of
itself: a processor that hangs keeps its partitions until its session times out.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from app.config import Settings
from app.eventstore.kafka import admin_client


async def processors_view(settings: Settings, consumer: AIOKafkaConsumer) -> dict[str, Any]:
    topic = settings.topic("commands")
    admin = admin_client(settings)
    await admin.start()
    try:
        [description] = await admin.describe_consumer_groups([settings.processor_group])
        committed = await admin.list_consumer_group_offsets(settings.processor_group)
    finally:
        await admin.close()
    group_state, owners, members = "unknown", dict[int, str](), list[str]()
    for group in description.groups:
        group_state = group[2] or "unknown"
        for member in group[5]:
            client_id, host, assignment = member[1], member[2], member[4]
            name = f"{client_id}@{host.lstrip('/')}"
            members.append(name)
            if assignment:
                for assigned_topic, partitions in ConsumerProtocolMemberAssignment.decode(assignment).assignment:
                    if assigned_topic == topic:
                        owners.update((p, name) for p in partitions)
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
    ends = await consumer.end_offsets(tps)
    partitions = []
    for tp in tps:
        done = committed.get(tp)
        offset = None if done is None or done.offset < 0 else done.offset
        end = ends.get(tp)
        partitions.append(
            {
                "partition": tp.partition,
                "owner": owners.get(tp.partition),
                "committed": offset,
                "end": end,
                "lag": None if end is None else end - (offset or 0),
            }
        )
    return {"group_state": group_state, "members": sorted(members), "partitions": partitions}
