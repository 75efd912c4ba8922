"""A partition's idempotency memory: which keyed commands it decided, and what it answered.

A command sent under an Idempotency-Key is remembered for a time
(`EVENTLINE_IDEMPOTENCY_RETENTION`, 24 h by default), never for a count of
other commands: a retry a day later, after any number of other commands on the
same aggregate, still gets its first answer and writes nothing.

Where it lives: on the partition's own changelog, `<ns>.aggregates` p, keyed
`command:<command id>`, written in the same transaction as the command's events.
So a takeover restores it in the same read that restores the states, and the
transaction touches no partition it did not touch already. An entry past its
retention is dropped from memory and tombstoned in a later transaction, so
compaction removes it from the topic too.

In memory each entry is the record's bytes and the time it was written; it is
decoded only when a command repeats, which is rare.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from app.eventstore.envelope import RememberedCommand

KEY_PREFIX = b"command:"

# Tombstones written per batch at most, so expiring a backlog never makes one transaction huge.
EXPIRE_PER_BATCH = 500


def record_key(command_id: str) -> bytes:
    return KEY_PREFIX + command_id.encode()


def is_command_key(key: bytes | None) -> bool:
    return key is not None and key.startswith(KEY_PREFIX)


def now_ms() -> int:
    return int(time.time() * 1000)


class IdempotencyMemory:
    """The remembered commands of one partition, oldest first."""

    def __init__(self, retention_ms: int) -> None:
        self.retention_ms = retention_ms
        # command id -> (remembered at, epoch ms; the encoded RememberedCommand)
        self.entries: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        # Expired while restoring: their tombstones go out with the next batch.
        self.unburied: list[str] = []

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, command_id: str) -> RememberedCommand | None:
        entry = self.entries.get(command_id)
        return None if entry is None else RememberedCommand.decode(entry[1])

    def remember(self, command_id: str, at_ms: int, raw: bytes) -> None:
        self.entries.pop(command_id, None)  # keep the order by time
        self.entries[command_id] = (at_ms, raw)

    def restore(self, key: bytes, at_ms: int, raw: bytes | None, now: int) -> None:
        """One record of the changelog, read in log order; a tombstone forgets."""
        command_id = key[len(KEY_PREFIX) :].decode()
        if raw is None:
            self.entries.pop(command_id, None)
        elif at_ms + self.retention_ms <= now:
            self.entries.pop(command_id, None)
            self.unburied.append(command_id)
        else:
            self.remember(command_id, at_ms, raw)

    def adopt(self, entries: Iterable[RememberedCommand], at_ms: int, now: int) -> None:
        """Entries of the older format, kept inside each aggregate's record: they expire like the rest."""
        if at_ms + self.retention_ms <= now:
            return
        for entry in entries:
            self.remember(entry.command_id, at_ms, entry.encode())

    def expire(self, now: int, limit: int = EXPIRE_PER_BATCH) -> list[str]:
        """Forget what is past its retention; the ids returned are to be tombstoned."""
        expired = self.unburied[:limit]
        del self.unburied[:limit]
        horizon = now - self.retention_ms
        while self.entries and len(expired) < limit:
            command_id, (at_ms, _) = next(iter(self.entries.items()))
            if at_ms > horizon:
                break
            self.entries.popitem(last=False)
            expired.append(command_id)
        return expired
