"""Key → partition must agree with Kafka's Java client, byte for byte."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import murmur2

from app.eventstore.partitioner import partition_for

# Kafka's own vectors for Utils.murmur2 (clients UtilsTest.testMurmur2), as Java's signed ints.
KAFKA_VECTORS: list[tuple[bytes, int]] = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

# Produced once with the real Java client (kafka-clients 4.1.1, via jshell):
#   Utils.murmur2(key.getBytes(UTF_8)), Utils.toPositive(h) % 8, Utils.toPositive(h) % 12
JAVA_TABLE: list[tuple[str, int, int, int]] = [
    ("1f351457-b03b-4d64-befd-d59c0ba8ae8f", -1603611886, 2, 10),
    ("10670c75-a62e-48f3-b870-b1bb2b1f1f38", -799247802, 6, 2),
    ("4ed2e967-14ba-4681-8631-6603b9b47557", -148711873, 7, 7),
    ("9a0d8dba-bef8-4ca7-9be1-6d637bdebf49", 235163313, 1, 9),
    ("c016722f-8a89-4041-9238-5d3bd58b1cb6", -519339701, 3, 3),
    ("9799c89c-2374-4ba5-a3c7-7734fd26c5f0", -1130315274, 6, 2),
    ("003bfd49-321a-4ec4-99b6-6e262c978205", -1712612254, 2, 10),
    ("f78b2685-6a10-46cf-9c07-e25b7b1a732c", 430696201, 1, 1),
    ("4ec617af-17c9-4113-aa51-c176444c4909", -795010598, 2, 6),
    ("003d4327-fae7-466a-9177-27f29e48eff1", 1885169746, 2, 10),
    ("b2a9b7ba-e61f-42d1-9535-197c3e526008", -1073631760, 0, 4),
    ("de301654-f7cf-44e7-97a9-26e6a4edd594", 1719534589, 5, 1),
    ("02ca9182-0d38-4c68-bd3a-ed2ccbb1234e", -1133056105, 7, 7),
    ("a18b23c9-8832-4114-a2a3-5ecbe5aabe60", -1460946894, 2, 2),
    ("d93f4c22-6dd2-462c-aea8-cca0f8e91d97", -1186499157, 3, 11),
    ("26133c23-e533-463f-880c-5bdfb40d873e", -2103789633, 7, 11),
    ("52fb2cc3-4e18-41c5-a7fb-dec1aca2c6f7", -1163444467, 5, 1),
    ("0ef68ca0-5b9d-4826-ab0a-65d8a4f0608d", 155246106, 2, 6),
    ("17cdb2c5-7875-4e86-b743-8afa320d68f4", -1541872927, 1, 1),
    ("113b77f4-28c0-4ba4-896a-247a5a8ee042", -549042492, 4, 8),
    # The Kafka vectors, a non-ASCII key (UTF-8 on both sides), the empty key and one byte.
    ("21", -973932308, 4, 0),
    ("foobar", -790332482, 6, 6),
    ("a-little-bit-long-string", -985981536, 0, 8),
    ("a-little-bit-longer-string", -1486304829, 3, 11),
    ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971, 5, 5),
    ("abc", 479470107, 3, 3),
    ("caf\u00e9-\u20ac", -1252928974, 2, 10),
    ("", 275646681, 1, 9),
    ("x", 2121525046, 6, 10),
]

KEYS = [key for key, *_ in JAVA_TABLE]


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS, ids=[k.decode() for k, _ in KAFKA_VECTORS])
def test_murmur2_matches_kafkas_own_test_vectors(key: bytes, expected: int) -> None:
    # aiokafka returns the 32 bits unsigned, Java a signed int: compare the bits.
    assert murmur2(key) % 2**32 == expected % 2**32


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS, ids=[k.decode() for k, _ in KAFKA_VECTORS])
def test_a_partition_is_the_positive_hash_modulo_the_partition_count(key: bytes, expected: int) -> None:
    for partitions in range(1, 65):
        assert partition_for(key, partitions) == (expected & 0x7FFFFFFF) % partitions


@pytest.mark.parametrize(("key", "java_hash", "of_8", "of_12"), JAVA_TABLE, ids=KEYS)
def test_partitions_match_the_java_client(key: str, java_hash: int, of_8: int, of_12: int) -> None:
    assert murmur2(key.encode()) % 2**32 == java_hash % 2**32
    assert partition_for(key, 8) == of_8
    assert partition_for(key, 12) == of_12


def test_str_and_bytes_keys_agree() -> None:
    for key in KEYS:
        for partitions in (1, 3, 8, 12, 64):
            assert partition_for(key, partitions) == partition_for(key.encode("utf-8"), partitions)


def test_partitions_are_ints_in_range_for_1_to_64_partitions() -> None:
    for key in KEYS:
        for partitions in range(1, 65):
            partition = partition_for(key, partitions)
            assert type(partition) is int
            assert 0 <= partition < partitions


def test_a_single_partition_takes_every_key() -> None:
    assert {partition_for(key, 1) for key in KEYS} == {0}


def test_keys_spread_over_partitions() -> None:
    # Not a statistical test: just proof that the hash is not degenerate.
    assert len({partition_for(f"acc-{i}", 12) for i in range(200)}) == 12
