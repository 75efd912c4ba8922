"""Consistency tokens: where a command's events landed, as {partition: offset}.

A token is opaque to clients: a short string such as `3:1041,5:87`. Tokens
merge by taking the highest offset per partition, so a client can carry one
token across several commands and ask a query to reflect all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

Position = dict[int, int]

# ASCII digits only (str.isdigit would accept superscripts), and no longer than a Kafka offset.
_PAIR = re.compile(r"([0-9]{1,10}):([0-9]{1,19})")


class InvalidPosition(ValueError):
    """A token that is not a list of `partition:offset` pairs."""


def encode(position: Mapping[int, int] | Mapping[str, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted((int(p), o) for p, o in position.items()))


def decode(token: str) -> Position:
    position: Position = {}
    if not token.strip():
        return position
    for part in token.split(","):
        pair = _PAIR.fullmatch(part.strip())
        if pair is None:
            raise InvalidPosition(f"not a position token: {token!r}")
        partition, offset = int(pair[1]), int(pair[2])
        position[partition] = max(offset, position.get(partition, -1))
    return position


def merge(positions: Iterable[Mapping[int, int]]) -> Position:
    merged: Position = {}
    for position in positions:
        for partition, offset in position.items():
            merged[partition] = max(offset, merged.get(partition, -1))
    return merged
