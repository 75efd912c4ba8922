"""Shards: fixed sets of command partitions that are owned, fenced and written together.

A Kafka transaction costs the broker about the same whether it carries one
command or a hundred, and one per partition and batch made the broker the
write side's largest cost. aiokafka fences by transactional id only (KIP-98,
no consumer-group generation), so the unit a transactional id names is the unit
that must be owned as a whole. A shard is that unit: partition p belongs to
shard p mod S, one transactional producer per shard fences its older owners,
and one transaction carries a batch of every partition of the shard.

S bounds how many processors share the work (a processor beyond S stands by)
and is fixed like the partition count: processors of different S cannot join
one group (the assignor's name carries S), and a zombie of another S would not
be fenced by these ids, so S changes only with every processor stopped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

from app.config import Settings


class Shards:
    """Which partitions make up which shard, and the transactional id that fences each."""

    def __init__(self, settings: Settings) -> None:
        self.namespace = settings.namespace
        self.partitions = settings.partitions
        self.count = min(settings.processor_shards, settings.partitions)

    def of(self, partition: int) -> int:
        return partition % self.count

    def partitions_of(self, shard: int) -> list[int]:
        return list(range(shard, self.partitions, self.count))

    def transactional_id(self, shard: int) -> str:
        # A shard of one partition keeps the id that partition always had, so a deployment
        # that writes one partition per transaction is fenced the way it always was.
        if self.count == self.partitions:
            return f"{self.namespace}.processor.{shard}"
        return f"{self.namespace}.processor.{shard}-of-{self.count}"

    def whole(self, partitions: Iterable[int]) -> list[int]:
        """The shards these partitions make up; a shard assigned in part is a bug of the assignor."""
        given = set(partitions)
        shards = sorted({self.of(p) for p in given})
        broken = [s for s in shards if not set(self.partitions_of(s)) <= given]
        if broken:
            raise RuntimeError(f"assigned part of shards {broken}: every partition of a shard goes to one owner")
        return shards

    def assignor(self) -> type[AbstractPartitionAssignor]:
        """A partition assignor that hands out whole shards, spread evenly over the group's members."""
        shards = self

        class ShardAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
            name = f"eventline-shards-{shards.count}"
            version = 0

            @classmethod
            def assign(
                cls, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
            ) -> dict[str, ConsumerProtocolMemberAssignment]:
                topics = sorted({topic for member in members.values() for topic in member.subscription})
                owned: dict[str, dict[str, list[int]]] = {member: {} for member in members}
                for topic in topics:
                    subscribers = sorted(m for m, meta in members.items() if topic in meta.subscription)
                    for shard, member in zip(range(shards.count), itertools.cycle(subscribers)):
                        present = cluster.partitions_for_topic(topic) or set()
                        taken = [p for p in shards.partitions_of(shard) if p in present]
                        owned[member].setdefault(topic, []).extend(taken)
                return {
                    member: ConsumerProtocolMemberAssignment(cls.version, sorted(topics_.items()), b"")
                    for member, topics_ in owned.items()
                }

            @classmethod
            def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
                return ConsumerProtocolMemberMetadata(cls.version, list(topics), b"")

            @classmethod
            def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
                pass

        return ShardAssignor
