"""Replica placement: partition i of every topic on the same brokers, in the same order."""

import pytest

from app.eventstore.topics import TopicMismatch, co_located


def test_partition_i_has_the_same_replicas_whatever_the_partition_count() -> None:
    events, results = co_located([3, 1, 2], 8, 3), co_located([1, 2, 3], 4, 3)
    assert all(events[i] == results[i] for i in range(4))


def test_leaders_rotate_over_the_brokers_and_replicas_are_distinct() -> None:
    placement = co_located([1, 2, 3], 6, 3)
    assert [replicas[0] for replicas in placement.values()] == [1, 2, 3, 1, 2, 3]
    assert all(len(set(replicas)) == 3 for replicas in placement.values())


def test_fewer_replicas_than_brokers_still_spread_the_leaders() -> None:
    placement = co_located([1, 2, 3, 4, 5], 5, 3)
    assert sorted(replicas[0] for replicas in placement.values()) == [1, 2, 3, 4, 5]
    assert placement[4] == [5, 1, 2]


def test_more_replicas_than_brokers_is_refused() -> None:
    with pytest.raises(TopicMismatch, match="needs as many brokers"):
        co_located([1, 2], 4, 3)
