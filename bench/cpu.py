"""Where the CPU went during a measurement: each process (with its children), from /proc.

On a 2-core machine every part of the system competes for the same cores,
so throughput is bounded by the CPU each command costs in all of them. The
meter reads utime + stime of each group's processes before and after a run
and reports the share of one core each group used.

It also reads how long each group's threads were runnable but waiting for a
core (the second field of /proc/<pid>/task/<tid>/schedstat) and the kernel's
CPU pressure (/proc/pressure/cpu, the share of time some runnable task
waited): a command's latency on a busy machine is its own work plus its turns
in that queue, at every hop.
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


def run_queue_seconds(pids: list[int]) -> dict[tuple[int, int], float]:
    """Seconds each thread of `pids` spent runnable but waiting for a core, by (pid, tid)."""
    waited = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                waited[(pid, int(tid))] = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                continue
    return waited


def cpu_pressure_seconds() -> float | None:
    """Total seconds some runnable task waited for a core (PSI), or None without PSI."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None
    return int(some.rsplit("total=", 1)[1]) / 1e6


class CpuMeter:
    """Share of one core used by each named process tree between `start()` and `stop()`.

    After `stop()`, `waiting` holds each tree's run-queue wait as a share of the elapsed
    time (seconds waited per second) and `pressure` the share of the time some task waited.
    """

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.before: dict[str, dict[int, float]] = {}
        self.waited_before: dict[str, dict[tuple[int, int], float]] = {}
        self.pressure_before: float | None = None
        self.started = 0.0
        self.waiting: dict[str, float] = {}
        self.pressure: float | None = None

    def start(self) -> None:
        self.before = {name: cpu_seconds(tree(pid)) for name, pid in self.roots.items()}
        self.waited_before = {name: run_queue_seconds(tree(pid)) for name, pid in self.roots.items()}
        self.pressure_before = cpu_pressure_seconds()
        self.started = time.monotonic()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        shares = {}
        for name, pid in self.roots.items():
            after = cpu_seconds(tree(pid))
            # Processes that started during the run count from zero; those that ended are lost.
            used = sum(seconds - self.before[name].get(p, 0.0) for p, seconds in after.items())
            shares[name] = round(used / elapsed, 3)
            waited = run_queue_seconds(tree(pid))
            before = self.waited_before[name]
            self.waiting[name] = round(sum(w - before.get(t, 0.0) for t, w in waited.items()) / elapsed, 3)
        pressure = cpu_pressure_seconds()
        if pressure is not None and self.pressure_before is not None:
            self.pressure = round((pressure - self.pressure_before) / elapsed, 3)
        return shares
