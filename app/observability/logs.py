"""Structured JSON logs that carry correlation and causation ids across processes.

The ids live in context variables: the API sets them from the request (or
`X-Correlation-ID`), and they travel inside every command and event envelope,
so the processor, the projector and the saga set them again from what they
handle. Every log line then names the request it ultimately belongs to.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
causation_id: ContextVar[str | None] = ContextVar("causation_id", default=None)


@contextmanager
def carrying(correlation: str | None, causation: str | None) -> Iterator[None]:
    """Log lines inside this block carry these ids."""
    tokens = correlation_id.set(correlation), causation_id.set(causation)
    try:
        yield
    finally:
        correlation_id.reset(tokens[0])
        causation_id.reset(tokens[1])


# What uvicorn passes with each access-log line, in order: searchable fields, not only a sentence.
ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in (("correlation_id", correlation_id), ("causation_id", causation_id)):
            if (value := var.get()) is not None:
                line[name] = value
        for key, value in getattr(record, "ids", {}).items():
            line[key] = value
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            line.update(zip(ACCESS_FIELDS, record.args, strict=True))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class Repeats(logging.Filter):
    """Let a library's repeated message through once per interval, saying how many were held back.

    While a broker is down aiokafka logs every failed reconnect, hundreds a second
    across a process's clients: that buries the lines that matter and costs CPU.
    Messages are grouped by logger and template, not by their arguments.
    """

    def __init__(self, prefix: str, interval_s: float = 5.0) -> None:
        super().__init__()
        self.prefix, self.interval_s = prefix, interval_s
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}  # → (last let through, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key, now = (record.name, str(record.msg)), time.monotonic()
        last, held = self.seen.get(key, (float("-inf"), 0))
        if now - last < self.interval_s:
            self.seen[key] = (last, held + 1)
            return False
        self.seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {self.interval_s:g} s]"
        return True


def configure(level: str = "INFO", json_format: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_format else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler.addFilter(Repeats("aiokafka"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def error_text(error: BaseException) -> str:
    """An error as a log line or a stored failure may say it: without the values it failed on.

    A validation error quotes its input (and a custom validator's message may too), and an input
    may be someone's personal data (docs/privacy.md): it is told by field and kind of error only.
    """
    if isinstance(error, ValidationError):
        places = "; ".join(
            f"{'.'.join(map(str, item['loc'])) or '(root)'}: {item['type']}"
            for item in error.errors(include_url=False, include_input=False, include_context=False)
        )
        return f"ValidationError: {places}"
    return f"{type(error).__name__}: {error}"
