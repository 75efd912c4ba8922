"""Wait on a condition with a deadline, never on a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[object]], expected: T, timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll `probe` until it returns `expected`; fail with the last value seen at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except Exception as error:  # a dependency may still be coming back
            last = error
        if last == expected:
            return expected
        await asyncio.sleep(interval)
    raise AssertionError(f"expected {expected!r} within {timeout}s, last saw {last!r}")
