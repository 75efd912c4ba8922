"""What tracing costs when it is on (app/observability/tracing.py), measured inside `make bench`.

A 64-client closed loop of deposits with tracing off, on, and on with a tenth
of the traces sampled (every process exporting its spans over OTLP/HTTP to a
sink in this process that reads and drops them), alternated twice on fresh
namespaces. Off, tracing does nothing at
all; on, each deposit is three spans (the API's command, the processor's
decision, the projector's batch) and their export.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.write_side import alternated, ratios


class Sink(BaseHTTPRequestHandler):
    """Reads an OTLP/HTTP export and answers 200 with an empty (valid) protobuf response."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Sink.received += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


SAMPLED = 0.1  # the share of traces kept in the "sampled" runs (EVENTLINE_TRACE_SAMPLE_RATIO)


async def measure_tracing(plan: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    with otlp_sink() as url:
        variants = {
            "off": {"otlp_endpoint": ""},
            "on": {"otlp_endpoint": url},
            "sampled": {"otlp_endpoint": url, "trace_sample_ratio": SAMPLED},
        }
        runs = await alternated("tracing", variants, plan["accounts"])
    pairs, sampled = ratios(runs, "on", "off"), ratios(runs, "sampled", "off")
    shown = ", ".join(f"{ratio:.3f}" for ratio in pairs)
    say(f"  tracing on / off at 64 clients: {shown}; 10% sampled / off: {', '.join(f'{r:.3f}' for r in sampled)}")
    return {
        "runs": runs,
        "on_off_ratios": pairs,
        "on_off_ratio": sum(pairs) / len(pairs),
        "sampled_ratio": SAMPLED,
        "sampled_off_ratios": sampled,
        "sampled_off_ratio": sum(sampled) / len(sampled),
        "exports": Sink.received,
    }
