"""Partitions are owned a shard at a time: every partition of a shard goes to one processor
(app/eventstore/shards.py), since one transactional id fences the shard as a whole."""

from __future__ import annotations

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from app.config import Settings
from app.eventstore.shards import Shards

TOPIC = "eventline.commands"


class Cluster:
    """The one thing an assignor asks of the cluster's metadata: a topic's partitions."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.partitions)) if topic == TOPIC else None


def assign(shards: Shards, members: list[str]) -> dict[str, list[int]]:
    metadata = {m: ConsumerProtocolMemberMetadata(0, [TOPIC], b"") for m in members}
    assignment = shards.assignor().assign(Cluster(shards.partitions), metadata)
    return {m: sorted(p for topic, ps in a.assignment for p in ps if topic == TOPIC) for m, a in assignment.items()}


@pytest.mark.parametrize("members", [1, 2, 3, 5])
@pytest.mark.parametrize(("partitions", "count"), [(8, 1), (8, 2), (8, 3), (8, 8), (4, 16)])
def test_every_partition_goes_to_one_member_with_the_rest_of_its_shard(
    partitions: int, count: int, members: int
) -> None:
    shards = Shards(Settings(partitions=partitions, processor_shards=count))
    owned = assign(shards, [f"member-{n}" for n in range(members)])
    every = sorted(p for ps in owned.values() for p in ps)
    assert every == list(range(partitions))
    for ps in owned.values():
        assert shards.whole(ps) == sorted({shards.of(p) for p in ps})
    sizes = [len(shards.whole(ps)) for ps in owned.values()]
    assert max(sizes) - min(sizes) <= 1  # shards spread evenly; a member beyond the count stands by


def test_a_shard_is_every_partition_congruent_to_it() -> None:
    shards = Shards(Settings(partitions=8, processor_shards=3))
    assert [shards.partitions_of(s) for s in range(3)] == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert [shards.of(p) for p in range(8)] == [0, 1, 2, 0, 1, 2, 0, 1]


def test_part_of_a_shard_is_refused() -> None:
    shards = Shards(Settings(partitions=8, processor_shards=2))
    with pytest.raises(RuntimeError, match="part of shards"):
        shards.whole([0, 2, 4])


def test_a_shard_of_one_partition_keeps_that_partitions_transactional_id() -> None:
    one_each = Shards(Settings(namespace="ns", partitions=8, processor_shards=8))
    assert one_each.transactional_id(3) == "ns.processor.3"
    two = Shards(Settings(namespace="ns", partitions=8, processor_shards=2))
    assert two.transactional_id(1) == "ns.processor.1-of-2"


def test_processors_that_disagree_on_the_shards_cannot_share_a_group() -> None:
    """The coordinator admits members only with a protocol in common: the name carries the count."""
    two = Shards(Settings(partitions=8, processor_shards=2)).assignor()
    four = Shards(Settings(partitions=8, processor_shards=4)).assignor()
    assert two.name != four.name
