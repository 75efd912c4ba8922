"""Key → partition, exactly as Kafka's Java client does it.

Any Kafka client in any language must agree on where an aggregate's commands
and events live: `toPositive(murmur2(key)) % partitions`. The murmur2 itself
is aiokafka's port of Kafka's `Utils.murmur2`; tests pin it to vectors from
Kafka's own test suite.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: str | bytes, partitions: int) -> int:
    raw = key.encode() if isinstance(key, str) else key
    return int(murmur2(raw) & 0x7FFFFFFF) % partitions
