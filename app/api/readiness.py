"""One readiness probe at a time, its answer shared by everyone who asked meanwhile.

`/health/ready` is open to anyone (load balancers call it without a key), and
each probe took a database connection from the pool the queries use: a flood
of probes turned queries into 503. Now the probe has a connection of its own
(`app.db.create_probe_engine`, pool of one), and callers arriving while a probe
runs wait for its answer instead of starting their own, so that one connection
is enough however many ask. No answer is reused after its probe ended: an
outage shows in the very next probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SharedProbe(Generic[T]):
    def __init__(self) -> None:
        self.running: asyncio.Task[T] | None = None
        self.started = 0  # probes actually run, for the tests

    async def get(self, find: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if self.running is None or self.running.done():
            self.running = asyncio.create_task(find())
            self.started += 1
        return await asyncio.shield(self.running)  # one caller giving up does not cancel the others' probe
