"""One paid message is one trace across api, processor, saga and projector, received over real OTLP/HTTP.

A small OTLP receiver runs in the test (an HTTP server on loopback that decodes the protobuf
requests the OpenTelemetry exporter sends); api, processor, projector and saga run as processes
of their own, each exporting its spans there under its own `service.name`.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from app.config import Settings
from tests.support import Process, free_port, fresh_namespace
from tests.waiting import eventually


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: dict[str, str]


class Receiver(ThreadingHTTPServer):
    """Takes OTLP/HTTP trace exports (protobuf, gzip or not) and keeps every span."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            attributes={a.key: a.value.string_value for a in span.attributes},
                        )
                    )
        with self.lock:
            self.spans += found

    def received(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        ok = self.path == "/v1/traces"
        if ok:
            self.server.take(body)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass  # quiet


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@asynccontextmanager
async def serving(settings: Settings, receiver: Receiver, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    """api, processor, projector and saga, each a process of its own exporting to `receiver`."""
    port = free_port()
    ns = await fresh_namespace(settings, own_database=True, api_port=port, otlp_endpoint=receiver.url, **overrides)
    processes = [Process(ns, name).start() for name in ("processor", "projector", "saga", "api")]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def ready() -> int:
                try:
                    return (await http.get("/health/ready")).status_code
                except httpx.TransportError:
                    return 0

            await eventually(ready, 200, timeout=90, interval=0.25)
            yield http
    finally:
        for process in processes:
            process.stop()


@pytest.fixture
async def api(settings: Settings, receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings, receiver) as http:
        yield http


async def paid_message(api: httpx.AsyncClient, headers: dict[str, str] | None = None) -> str:
    """Two accounts, a funded sender, a conversation, and a message sent (with `headers`) and
    delivered; the message's id."""
    ids = []
    for owner in ("Sender", "Recipient"):
        ids.append((await api.post("/accounts", json={"owner": owner, "currency": "EUR"})).json()["aggregate_id"])
    funded = await api.post(f"/accounts/{ids[0]}/deposits", json={"amount": 1000})
    started = await api.post(
        "/conversations", json={"participants": ids}, headers={"X-Consistent-With": funded.json()["position"]}
    )
    conversation = started.json()["conversation_id"]
    await api.get(f"/conversations/{conversation}/messages", headers={"X-Consistent-With": started.json()["position"]})
    sent = await api.post(
        f"/conversations/{conversation}/messages", json={"sender": ids[0], "body": "traced"}, headers=headers
    )
    message = str(sent.json()["message_id"])

    async def status() -> str:
        return str((await api.get(f"/messages/{message}")).json()["status"])

    await eventually(status, "delivered", timeout=60)
    return message


WANTED = {
    ("api", "command SubmitMessage"),
    ("processor", "decide SubmitMessage"),
    ("saga", "saga MessageSubmitted"),
    ("processor", "decide Charge"),
    ("saga", "saga AccountCharged"),
    ("processor", "decide DeliverMessage"),
    ("projector", "project MessageDelivered"),
}


def trace_of(receiver: Receiver, message: str) -> list[ReceivedSpan]:
    """Every span received in the trace whose command span is about `message`."""
    spans = receiver.received()
    roots = [
        s for s in spans if s.name == "command SubmitMessage" and s.attributes.get("eventline.aggregate_id") == message
    ]
    return [s for s in spans if roots and s.trace_id == roots[0].trace_id]


async def test_a_paid_message_is_one_trace_across_every_process(api: httpx.AsyncClient, receiver: Receiver) -> None:
    message = await paid_message(api)

    async def steps() -> set[tuple[str, str]]:
        return WANTED & {(s.service, s.name) for s in trace_of(receiver, message)}

    await eventually(steps, WANTED, timeout=30, interval=0.5)
    spans = trace_of(receiver, message)
    by_id = {s.span_id: s for s in spans}
    # The root is the HTTP request's span (FastAPI makes it, and would continue a caller's traceparent).
    [root] = [s for s in spans if not s.parent_id]
    assert (root.service, root.name) == ("api", "POST /conversations/{conversation_id}/messages")
    orphans = [s.name for s in spans if s.parent_id and s.parent_id not in by_id]
    assert orphans == [], orphans  # every hop is joined to the one before it
    command = next(s for s in spans if s.name == "command SubmitMessage")
    decided = next(s for s in spans if s.name == "decide SubmitMessage")
    assert by_id[decided.parent_id] == command

    def ancestors(span: ReceivedSpan) -> list[str]:
        found = []
        while span.parent_id:
            span = by_id[span.parent_id]
            found.append(span.name)
        return found

    projected = next(s for s in spans if s.name == "project MessageDelivered")
    # The command's span hangs from the request's (a lean route has no FastAPI endpoint span between them).
    assert ancestors(projected)[-2:] == ["command SubmitMessage", root.name], ancestors(projected)
    # Spans say which message and command they are about, never what it says.
    assert all("traced" not in value for s in spans for value in s.attributes.values())


async def test_sampled_at_zero_only_a_callers_sampled_trace_is_kept_and_whole(
    settings: Settings, receiver: Receiver
) -> None:
    """EVENTLINE_TRACE_SAMPLE_RATIO=0: the requests this test sends without trace context start no
    trace, in any process; the one that carries a caller's sampled `traceparent` is traced through
    every hop, as each process follows the decision its record carries rather than its own ratio."""
    caller_trace, caller_span = "5" * 32, "6" * 16
    async with serving(settings, receiver, trace_sample_ratio=0.0) as api:
        message = await paid_message(api, headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})

        async def steps() -> set[tuple[str, str]]:
            return WANTED & {(s.service, s.name) for s in trace_of(receiver, message)}

        await eventually(steps, WANTED, timeout=30, interval=0.5)
    spans = receiver.received()  # every process has stopped, so has flushed what it recorded
    assert {s.trace_id for s in spans} == {caller_trace}, {
        (s.service, s.name) for s in spans if s.trace_id != caller_trace
    }
    [root] = [s for s in spans if s.parent_id == caller_span]
    assert root.name == "POST /conversations/{conversation_id}/messages"
