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

from bench.drain import drained
from bench.setup import bench_settings
from bench.write_side import closed_loops_with_cpu, serving_eventline

LEVERS: dict[str, tuple[int, int]] = {"lean_routes": (0, 1), "gc_young_threshold": (700, 20_000)}


async def measure_levers(plan: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for setting, (off, on) in LEVERS.items():
        runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
        for side, value in (("off", off), ("on", on), ("off", off), ("on", on)):
            settings = await bench_settings(**{setting: value})
            async with serving_eventline(settings, plan["accounts"]) as (base, accounts, services):
                await drained(settings, base)
                figures = await closed_loops_with_cpu(f"  {setting} {value}", base, accounts, services, (64,))
                runs[side].append(figures["closed_64"])
        pairs = [b["commands_per_s"] / a["commands_per_s"] for a, b in zip(runs["off"], runs["on"], strict=True)]
        say(f"  {setting} {on} / {off} at 64 clients: " + ", ".join(f"{ratio:.3f}" for ratio in pairs))
        found[setting] = {"off": off, "on": on, "runs": runs, "ratios": pairs, "ratio": sum(pairs) / len(pairs)}
    return found
