"""API keys as configured: `name:role:<sha256 hex>` entries, parsed and validated."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

Role = Literal["reader", "writer", "admin"]
RANK: dict[str, int] = {"reader": 1, "writer": 2, "admin": 3}


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    role: Role
    sha256: bytes


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """`name:role:hex,…` → keys; raises ValueError naming the bad entry (never echoing a hash)."""
    keys = []
    for number, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), start=1):
        parts = entry.split(":")
        if len(parts) != 3 or parts[1] not in RANK or len(parts[2]) != 64:
            raise ValueError(f"EVENTLINE_API_KEYS entry {number} is not name:reader|writer|admin:<sha256 hex>")
        try:
            digest = bytes.fromhex(parts[2])
        except ValueError as error:
            raise ValueError(f"EVENTLINE_API_KEYS entry {number} has a hash that is not hex") from error
        keys.append(ApiKey(parts[0], parts[1], digest))  # type: ignore[arg-type]
    return tuple(keys)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
