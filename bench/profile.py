"""Where the time goes: py-spy samples of a running process, summarised.

`py-spy record --pid` (installed in the venv; skipped when missing or when it
cannot attach) writes collapsed stacks; the summary is the share of samples
by innermost frame (self time), by package of the innermost frame, and the
Eventline functions (app/, projections/) on the stack most often (inclusive).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench.processes import LOGS, VENV_BIN

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")


def py_spy() -> str | None:
    found = VENV_BIN / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def start_recording(pid: int, name: str, seconds: float) -> tuple[subprocess.Popen[bytes], Path] | None:
    binary = py_spy()
    if binary is None:
        return None
    LOGS.mkdir(parents=True, exist_ok=True)
    output = LOGS / f"profile-{name}.txt"
    output.unlink(missing_ok=True)
    argv = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "100",
        "--format",
        "raw",
        "--function",
        "--nonblocking",
        "--output",
        str(output),
    ]
    log = (LOGS / f"profile-{name}.log").open("wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), output


def wait_for(recorder: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """A recorder stops by itself after its duration; one that hangs is killed."""
    try:
        recorder.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.wait()


def finish_recording(recording: tuple[subprocess.Popen[bytes], Path] | None) -> dict[str, Any] | None:
    if recording is None:
        return None
    popen, output = recording
    wait_for(popen)
    if not output.exists() or output.stat().st_size == 0:
        return None
    return summarise(output.read_text(errors="replace"))


def package(file: str) -> str:
    """The top-level package (or stdlib module) of a frame's file, as py-spy prints it."""
    file = re.sub(r":\d+$", "", file)
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    head = file.lstrip("<").split("/", 1)[0]
    return head.removesuffix(".py").removesuffix(">")


def label(frame: str) -> str:
    match = FRAME.match(frame)
    if match is None:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    if match["function"] == "Runner.run":
        # uvloop's loop is native code: samples here are its own I/O work and waits for the network.
        return "Runner.run (event loop: uvloop native code, polling and socket I/O)"
    return f"{match['function']} ({file})"


def summarise(raw: str, top: int = 15) -> dict[str, Any]:
    self_time: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        self_time[label(leaf)] += count
        match = FRAME.match(leaf)
        by_package[package(match["file"]) if match else "?"] += count
        seen = set()
        for frame in frames:
            match = FRAME.match(frame)
            if match and package(match["file"]) in ("app", "projections"):
                seen.add(label(frame))
        for name in seen:
            inclusive[name] += count

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self": shares(self_time),
        "packages": shares(by_package),
        "eventline_inclusive": shares(inclusive),
    }
