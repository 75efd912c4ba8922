"""Where the CPU went during a measurement: each process (with its children), from /proc.

On a 2-core machine every part of the system competes for the same cores,
so throughput is bounded by the CPU each command costs in all of them. The
meter reads utime + stime of each group's processes before and after a run
and reports the share of one core each group used.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.paths import ROOT

TICKS = os.sysconf("SC_CLK_TCK")
LOCAL = Path(os.environ.get("EVENTLINE_LOCAL_DIR", ROOT / ".local"))


def infra_pids() -> dict[str, int]:
    """The broker's and PostgreSQL's main pids, from the pid files scripts/infra.py keeps."""
    found = {}
    for name, pid_file in (
        ("kafka", LOCAL / "kafka" / "kafka.pid"),
        ("postgres", LOCAL / "postgres" / "data" / "postmaster.pid"),
    ):
        try:
            found[name] = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            continue
    return found


def tree(root: int) -> list[int]:
    """`root` and its descendants (PostgreSQL serves each connection from a child process)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        seconds[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    return seconds


class CpuMeter:
    """Share of one core used by each named process tree between `start()` and `stop()`."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.before: dict[str, dict[int, float]] = {}
        self.started = 0.0

    def start(self) -> None:
        self.before = {name: cpu_seconds(tree(pid)) for name, pid in self.roots.items()}
        self.started = time.monotonic()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        shares = {}
        for name, pid in self.roots.items():
            after = cpu_seconds(tree(pid))
            # Processes that started during the run count from zero; those that ended are lost.
            used = sum(seconds - self.before[name].get(p, 0.0) for p, seconds in after.items())
            shares[name] = round(used / elapsed, 3)
        return shares
