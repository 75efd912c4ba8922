"""On-CPU time by library: `perf record` of a running process, summarised by shared object.

py-spy samples a thread whenever it is not idle, and on a saturated machine a
thread that is runnable but waiting for a core counts too: its samples pile up
wherever it was preempted, typically in the socket write that woke the broker.
perf samples only what is on a CPU, so this split (interpreter, kernel, native
extensions) is what the process really spends. Skipped when perf is missing
or may not attach.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.processes import LOGS
from bench.profile import wait_for

LINE = re.compile(r"^\s*(?P<share>\d+\.\d+)%\s+(?P<dso>\S.*?)\s*$")


def start_recording(pid: int, name: str, seconds: float) -> tuple[subprocess.Popen[bytes], Path] | None:
    binary = shutil.which("perf")
    if binary is None:
        return None
    LOGS.mkdir(parents=True, exist_ok=True)
    output = LOGS / f"perf-{name}.data"
    output.unlink(missing_ok=True)
    argv = [
        binary,
        "record",
        "--freq",
        "499",
        "--pid",
        str(pid),
        "--output",
        str(output),
        "--",
        "sleep",
        str(max(1, round(seconds))),
    ]
    log = (LOGS / f"perf-{name}.log").open("wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), output


def finish_recording(recording: tuple[subprocess.Popen[bytes], Path] | None) -> list[list[Any]] | None:
    """[[shared object, share of on-CPU samples in %], …], largest first."""
    if recording is None:
        return None
    popen, output = recording
    wait_for(popen)
    if not output.exists():  # (perf exits non-zero when the process ends first; what it caught still counts)
        return None
    report = subprocess.run(
        ["perf", "report", "--input", str(output), "--stdio", "--sort", "dso"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    shares = [
        [m["dso"], float(m["share"])]
        for line in report.stdout.splitlines()
        if not line.startswith("#") and (m := LINE.match(line))
    ]
    return shares or None
