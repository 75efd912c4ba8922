"""A minimal HTTP/1.1 client for the load generator: keep-alive connections and nothing else.

Hand-written on purpose. httpx spends about a millisecond of CPU per request,
so on a 2-core machine the generator, not the service, set the pace of an
open loop at 500 requests/s. This client does what the benchmark needs and no
more: one request at a time per connection, `Content-Length` bodies (what
uvicorn sends for a plain response), loopback only. It is not a general client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson


class ProtocolError(Exception):
    """The answer was not one this client reads (chunked, closed early, malformed)."""


@dataclass(frozen=True, slots=True)
class Response:
    status_code: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]

# uvicorn closes a connection idle for 5 s; one idle for less than this is safe to reuse.
REUSE_WITHIN_S = 2.0


class Client:
    """A pool of keep-alive connections to one host; a request waits when all of them are busy."""

    def __init__(self, host: str, port: int, max_connections: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[Stream, float]] = []  # with when each was last used
        self.slots = asyncio.Semaphore(max_connections)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        async with self.slots:
            stream = self.reusable() or await asyncio.open_connection(self.host, self.port)
            try:
                response, keep = await exchange(stream, payload)
            except BaseException:
                stream[1].close()
                raise
            if keep:
                self.idle.append((stream, time.monotonic()))
            else:
                stream[1].close()
            return response

    def reusable(self) -> Stream | None:
        """The most recently used idle connection, closing those the server may have closed already."""
        now = time.monotonic()
        while self.idle:
            stream, used = self.idle.pop()
            if now - used < REUSE_WITHIN_S:
                return stream
            stream[1].close()
        return None

    async def post(self, path: str, json: Any, headers: dict[str, str] | None = None) -> Response:
        return await self.request(
            "POST", path, orjson.dumps(json), {"Content-Type": "application/json", **(headers or {})}
        )

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return await self.request("GET", path, headers=headers)

    def close(self) -> None:
        for (_, writer), _ in self.idle:
            writer.close()
        self.idle.clear()


async def exchange(stream: Stream, payload: bytes) -> tuple[Response, bool]:
    """Send one request and read its answer; also say whether the connection may be reused."""
    reader, writer = stream
    writer.write(payload)
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        raise ProtocolError("connection closed before an answer") from error
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise ProtocolError("an answer without Content-Length (chunked?) is not supported")
    body = await reader.readexactly(int(headers["content-length"]))
    return Response(int(parts[1]), headers, body), headers.get("connection", "").lower() != "close"
