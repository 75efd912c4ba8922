"""The stream generator: a process of its own that holds notification streams open while deposits
flow, and prints JSON results.

    python -m bench.sse_load --url http://127.0.0.1:PORT --users FILE --service-token KEY --api-pid PID

`--users` lists one user per line: `account_id token position` (the account the user opened with
that token, and the position of its opening). Two phases, each with deposits at `--rate` for
`--duration` seconds, one per account in turn (so no account has two in flight and each
notification maps to one deposit):

1. baseline: one stream of a service key, which gets every notification;
2. the same stream, plus one stream per user (each gets only its own account's notifications).

Delivery latency counts from a deposit's request being sent to its notification arriving on a
stream. Memory per stream is the API process's resident set before and after the users' streams
opened, divided by their number. Loopback only; bounded in count (the users) and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop

from bench.http_client import Client
from bench.load import summary

OPEN_CONCURRENCY = 64


@dataclass
class User:
    account_id: str
    token: str
    position: str


@dataclass
class Deliveries:
    sent: dict[str, float] = field(default_factory=dict)  # account → when its deposit in flight was sent
    user_latency: list[float] = field(default_factory=list)
    service_latency: list[float] = field(default_factory=list)
    measuring: bool = False
    delivered: int = 0  # on the users' streams, while measuring
    seen: int = 0  # deposits' notifications on the service stream, measuring or not


def rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SseStream:
    """One open stream over its own connection: HTTP/1.1 chunked, SSE frames inside."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int, headers: dict[str, str]) -> SseStream:
        reader, writer = await asyncio.open_connection(host, port, limit=2**20)
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (
            f"GET /notifications/stream HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n{lines}\r\n"
        )
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            writer.close()
            raise RuntimeError(f"stream refused: {head[:200]!r}")
        return cls(reader, writer)

    async def frames(self) -> Any:
        buffered = b""
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.strip().split(b";")[0], 16)
            if size == 0:
                return
            buffered += (await self.reader.readexactly(size + 2))[:-2]
            *complete, buffered = buffered.split(b"\n\n")
            for raw in complete:
                yield raw

    def close(self) -> None:
        self.writer.close()


async def follow(stream: SseStream, deliveries: Deliveries, into: list[float]) -> None:
    """Count each deposit's notification on this stream, from its deposit's send time."""
    async for raw in stream.frames():
        if b"event: FundsDeposited" not in raw:
            continue
        data = raw[raw.index(b"data: ") + 6 :]
        account = orjson.loads(data)["aggregate_id"]
        sent = deliveries.sent.get(account)
        if into is deliveries.service_latency:
            deliveries.seen += 1
        if sent is not None and deliveries.measuring:
            into.append(time.perf_counter() - sent)
            if into is deliveries.user_latency:
                deliveries.delivered += 1


async def flow(
    client: Client, users: list[User], deliveries: Deliveries, rate: float, duration: float
) -> dict[str, Any]:
    """Deposits at `rate` for `duration`, one account after the other; the answers counted."""
    statuses: dict[str, int] = {}
    answered: list[float] = []  # each deposit's own latency, to its 200
    tasks: set[asyncio.Task[None]] = set()
    count = min(len(users), int(rate * duration))

    async def deposit(user: User) -> None:
        deliveries.sent[user.account_id] = sent = time.perf_counter()
        headers = {"Authorization": f"Bearer {user.token}"}
        try:
            response = await client.post(f"/accounts/{user.account_id}/deposits", json={"amount": 1}, headers=headers)
            key = str(response.status_code)
            answered.append(time.perf_counter() - sent)
        except Exception as error:  # counted, never raised: one failure must not end the run
            key = type(error).__name__
        statuses[key] = statuses.get(key, 0) + 1

    started = time.perf_counter()
    for n in range(count):
        due = started + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        task = asyncio.create_task(deposit(users[n]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - started
    return {"sent": count, "statuses": statuses, "seconds": seconds, "deposit_latency": summary(answered)}


async def until(reached: Callable[[], bool], timeout: float) -> None:
    """Until `reached()` (every notification expected has arrived), or `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if reached():
            return
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace, users: list[User]) -> dict[str, Any]:
    url = urlsplit(args.url)
    host, port = url.hostname or "", url.port or 0
    if host not in ("127.0.0.1", "localhost", "::1") or not port:
        raise SystemExit(f"a loopback address with a port, not {args.url}")
    client = Client(host, port, max_connections=32)
    deliveries = Deliveries()
    readers: list[asyncio.Task[None]] = []
    streams: list[SseStream] = []
    result: dict[str, Any] = {"streams": len(users), "rate": args.rate, "duration_s": args.duration}
    try:
        service = await SseStream.open(host, port, {"Authorization": f"Bearer {args.service_token}"})
        streams.append(service)
        readers.append(asyncio.create_task(follow(service, deliveries, deliveries.service_latency)))

        # 0. Warm-up, not counted: the first deposits of each process pay for their caches.
        warmup = await flow(client, users, deliveries, args.rate, args.warmup)
        await until(lambda: deliveries.seen >= warmup["sent"], 15)  # its notifications arrive uncounted

        # 1. Baseline: one stream, every notification.
        deliveries.measuring = True
        baseline = await flow(client, users, deliveries, args.rate, args.duration)
        await until(lambda: len(deliveries.service_latency) >= baseline["sent"], 15)
        result["baseline"] = baseline | {
            "delivered": len(deliveries.service_latency),
            "latency": summary(deliveries.service_latency),
        }
        deliveries.measuring = False
        deliveries.service_latency.clear()  # in place: the stream's reader holds this list

        # 2. One stream per user beside it.
        rss0, opened_at = rss_bytes(args.api_pid), time.perf_counter()
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def open_one(user: User) -> SseStream:
            headers = {"Authorization": f"Bearer {user.token}", "X-Consistent-With": user.position}
            headers["Accept"] = "text/event-stream"
            async with gate:
                return await SseStream.open(host, port, headers)

        mine = await asyncio.gather(*(open_one(user) for user in users))
        result["open_seconds"] = time.perf_counter() - opened_at
        streams.extend(mine)
        readers.extend(asyncio.create_task(follow(s, deliveries, deliveries.user_latency)) for s in mine)
        rss1 = rss_bytes(args.api_pid)
        result["api_rss_before_mib"], result["api_rss_after_mib"] = rss0 / 2**20, rss1 / 2**20
        result["bytes_per_stream"] = (rss1 - rss0) / len(users)

        deliveries.measuring = True
        cpu0, cpu_started = cpu_seconds(args.api_pid), time.perf_counter()
        loaded = await flow(client, users, deliveries, args.rate, args.duration)
        sent = loaded["sent"]
        await until(lambda: deliveries.delivered >= sent and len(deliveries.service_latency) >= sent, 15)
        api_cores = (cpu_seconds(args.api_pid) - cpu0) / (time.perf_counter() - cpu_started)
        result["loaded"] = loaded | {
            "delivered": deliveries.delivered,
            "latency": summary(deliveries.user_latency),
            "service_latency": summary(deliveries.service_latency),
            "api_cores": api_cores,
        }
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["generator_cpu_s"] = usage.ru_utime + usage.ru_stime
    finally:
        for task in readers:
            task.cancel()
        for stream in streams:
            stream.close()
        client.close()
    return result


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--users", required=True, help="file: account_id token position, one user per line")
    parser.add_argument("--service-token", required=True)
    parser.add_argument("--api-pid", type=int, required=True)
    parser.add_argument("--rate", type=float, default=200.0, help="deposits per second")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    with open(args.users) as file:
        users = [User(*line.split()) for line in file if line.strip()]
    result = uvloop.run(main(args, users))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # open streams need no goodbye


if __name__ == "__main__":
    run()
