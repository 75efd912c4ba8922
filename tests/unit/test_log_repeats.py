"""The filter that keeps a library's reconnect storm out of the logs."""

from __future__ import annotations

import logging
import time

from app.observability.logs import Repeats


def record(name: str, node: int) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, "Unable connect to node with id %s", (node,), None)


def test_a_repeated_message_passes_once_per_interval_then_says_how_many_were_held_back() -> None:
    repeats = Repeats("aiokafka", interval_s=0.2)
    passed = [r for r in (record("aiokafka", n) for n in range(100)) if repeats.filter(r)]
    assert len(passed) == 1 and passed[0].getMessage() == "Unable connect to node with id 0"
    time.sleep(0.25)
    later = record("aiokafka", 7)
    assert repeats.filter(later)
    assert later.getMessage() == "Unable connect to node with id 7 [99 more like this in the last 0.2 s]"


def test_other_loggers_and_other_messages_are_not_held_back() -> None:
    repeats = Repeats("aiokafka", interval_s=60)
    assert all(repeats.filter(record("app.eventstore.processor", n)) for n in range(10))
    assert repeats.filter(record("aiokafka.consumer", 1))  # another logger of the library: its own count
    other = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "Heartbeat failed", (), None)
    assert repeats.filter(record("aiokafka", 1)) and repeats.filter(other)
