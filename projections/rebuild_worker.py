"""One process of a parallel rebuild (`eventline rebuild --workers N`).

It reads its job as JSON on stdin — the settings, the projections' names and
its share of the partitions with where to stop — replays that share into the
rebuild schema (projections/rebuild.py), and prints the messages it applied,
per projection, as JSON on stdout. The parent compares and swaps. Its one
argument is the parent's pid: the worker dies with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

import orjson
import uvloop

from app.config import Settings
from app.db import create_engine
from app.observability import logs
from app.process_tuning import tune_garbage_collector
from projections.rebuild import Ends, replay
from projections.registry import PROJECTIONS

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


async def replay_share(settings: Settings, names: list[str], ends: Ends) -> dict[str, int]:
    engine = create_engine(settings)
    try:
        return await replay(settings, engine, [PROJECTIONS[name] for name in names], ends)
    finally:
        await engine.dispose()


def die_with_parent(parent: int) -> None:
    """A worker must not replay on alone once its rebuild is gone (killed, say): have Linux kill it then."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        raise SystemExit("the rebuild that started this worker is gone")


def main() -> None:
    die_with_parent(int(sys.argv[1]))
    job = orjson.loads(sys.stdin.buffer.read())
    settings = Settings(**job["settings"])
    logs.configure(settings.log_level, json_format=settings.log_format == "json")
    tune_garbage_collector(settings.gc_young_threshold)
    ends = {(topic, partition): end for topic, partition, end in job["ends"]}
    applied = uvloop.run(replay_share(settings, job["projections"], ends))
    sys.stdout.buffer.write(orjson.dumps(applied))


if __name__ == "__main__":
    main()
