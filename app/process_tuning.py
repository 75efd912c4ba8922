"""How every long-running Eventline process tunes its interpreter at start (services, rebuilds)."""

from __future__ import annotations

import gc


def tune_garbage_collector(young_threshold: int) -> None:
    """The youngest generation is collected less often (Settings.gc_young_threshold); the older
    ones keep Python's thresholds. docs/write-path.md, "The garbage collector's young generation"."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
