"""Consistency tokens: `partition:offset` pairs, merged by the highest offset per partition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.eventstore.position import InvalidPosition, decode, encode, merge

offsets = st.dictionaries(st.integers(0, 1000), st.integers(0, 2**63 - 1), max_size=20)


def test_a_position_encodes_to_a_short_token_and_back() -> None:
    token = encode({3: 1041, 5: 87})

    assert token == "3:1041,5:87"
    assert decode(token) == {3: 1041, 5: 87}


@given(offsets)
def test_every_position_round_trips(position: dict[int, int]) -> None:
    assert decode(encode(position)) == position


def test_partitions_are_sorted_numerically_not_as_text() -> None:
    assert encode({10: 1, 2: 5, 0: 9}) == "0:9,2:5,10:1"


def test_string_keyed_positions_from_json_encode_like_int_keyed_ones() -> None:
    # CommandResult.position comes back from JSON with string keys.
    assert encode({"10": 1, "2": 5}) == encode({10: 1, 2: 5}) == "2:5,10:1"


def test_the_empty_position_is_the_empty_token() -> None:
    assert encode({}) == ""
    assert decode("") == {}


def test_a_blank_token_is_the_empty_position() -> None:
    assert decode("   ") == {}


def test_spaces_around_pairs_are_ignored() -> None:
    assert decode(" 3:1041 , 5:87 ") == {3: 1041, 5: 87}


def test_leading_zeros_are_accepted_and_normalised_away() -> None:
    assert decode("03:0041") == {3: 41}
    assert encode(decode("03:0041")) == "3:41"


def test_a_partition_given_twice_keeps_its_highest_offset() -> None:
    assert decode("3:10,3:7") == {3: 10}
    assert decode("3:7,3:10") == {3: 10}


def test_offset_zero_is_valid() -> None:
    assert decode("0:0") == {0: 0}


@pytest.mark.parametrize(
    "token",
    [
        "a:b",
        "1:",
        ":1",
        ":",
        "1",
        "1:2:3",
        "-1:2",
        "1:-2",
        "+1:2",
        "1:+2",
        "1:2,",
        ",1:2",
        "1:2,,3:4",
        "1;2",
        "1=2",
        "1:2.5",
        "1.0:2",
        "1 :2",
        "1: 2",
        "0x1:2",
        "1:1e3",
        "one:two",
        "1:2 3:4",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidPosition, match="not a position token"):
        decode(token)


def test_an_invalid_position_is_a_value_error() -> None:
    assert issubclass(InvalidPosition, ValueError)


@pytest.mark.parametrize(
    "token",
    ["0:\u00b2", "\u00b9:0", "0:" + "9" * 5000, "\u0663:\u0664", "0:" + "9" * 20],
    ids=["superscript-offset", "superscript-partition", "5000-digit-offset", "arabic-indic", "past-int64"],
)
def test_tokens_with_digits_int_cannot_read_are_refused_as_invalid(token: str) -> None:
    with pytest.raises(InvalidPosition):
        decode(token)


def test_merge_takes_the_highest_offset_per_partition() -> None:
    merged = merge([{0: 5, 1: 9}, {1: 3, 2: 4}, {0: 7}])

    assert merged == {0: 7, 1: 9, 2: 4}


def test_merging_nothing_is_the_empty_position() -> None:
    assert merge([]) == {}
    assert merge([{}, {}]) == {}


def test_merge_does_not_change_its_inputs() -> None:
    first, second = {0: 5}, {0: 7, 1: 1}

    merge([first, second])

    assert first == {0: 5}
    assert second == {0: 7, 1: 1}


@given(st.lists(offsets, max_size=5))
def test_merge_is_order_independent_and_dominates_every_input(positions: list[dict[int, int]]) -> None:
    merged = merge(positions)

    assert merged == merge(reversed(positions))
    for position in positions:
        for partition, offset in position.items():
            assert merged[partition] >= offset
    assert set(merged) == {p for position in positions for p in position}


def test_a_client_can_merge_decoded_tokens_and_encode_the_result() -> None:
    token = encode(merge([decode("3:1041,5:87"), decode("5:90,7:1")]))

    assert token == "3:1041,5:90,7:1"
