"""Levers of issue 17 measured inside `make bench`: each setting off and on, alternated, in this run.

A 64-client closed loop of deposits for each value on a fresh namespace, in the
order off, on, off, on, so a drift of the shared machine's speed shows as a
difference between the two pairs rather than as the lever's effect:

- `lean_routes` 0 → 1: command routes served by FastAPI's general parameter
  solving, or by their lean path (app/api/lean_routes.py);
- `gc_young_threshold` 700 → 20,000: Python's default for when the garbage
  collector's youngest generation is collected, or the processes' default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.write_side import alternated, ratios

LEVERS: dict[str, tuple[int, int]] = {"lean_routes": (0, 1), "gc_young_threshold": (700, 20_000)}


async def measure_levers(plan: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for setting, (off, on) in LEVERS.items():
        runs = await alternated(setting, {"off": {setting: off}, "on": {setting: on}}, plan["accounts"])
        pairs = ratios(runs, "on", "off")
        say(f"  {setting} {on} / {off} at 64 clients: " + ", ".join(f"{ratio:.3f}" for ratio in pairs))
        found[setting] = {"off": off, "on": on, "runs": runs, "ratios": pairs, "ratio": sum(pairs) / len(pairs)}
    return found
