"""The load generator: a process of its own that posts deposits and prints JSON results.

    python -m bench.load --url http://127.0.0.1:PORT --accounts FILE --mode closed --concurrency 64
    python -m bench.load --url ... --accounts FILE --mode open --rate 500
    python -m bench.load --url ... --accounts FILE --mode open --rate 500 --visibility-every 5

Every service under test answers the same request: `POST /accounts/{id}/deposits`
with `{"amount": 1}` on one of the accounts listed (one id per line). Closed
loop: `concurrency` clients each send their next command when the previous
answer arrives. Open loop: commands are started at a fixed rate whatever the
answers do, and latency is measured from the moment a command was due (so a
stalled server is not hidden by the generator waiting for it). With
`--visibility-every N`, every Nth accepted command is followed by
`GET /accounts/{id}` with `X-Consistent-With: <position>` (Eventline only):
the time from the accepted answer to the read that shows the new version.

Bounded in time (warm-up, then measurement) and in count (`--max-requests`).
Loopback only. A minimal keep-alive HTTP/1.1 client (bench/http_client.py; httpx
itself used more CPU than the services it measured) on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import uvloop

from bench.http_client import Client, ProtocolError

# BENCH_DEPOSIT_BODY replaces it, e.g. with a reference, a personal field that is sealed (bench.gather's privacy A/B).
BODY = os.environ.get("BENCH_DEPOSIT_BODY", '{"amount":1}').encode()
HEADERS = {"Content-Type": "application/json"}
FAILURES = (OSError, ProtocolError, TimeoutError)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {f"p{q:g}_ms": percentile(values, q) * 1000 for q in (50, 90, 99, 99.9)} | {
        "max_ms": (max(values) if values else float("nan")) * 1000,
        "mean_ms": (sum(values) / len(values) if values else float("nan")) * 1000,
    }


class Run:
    def __init__(self, args: argparse.Namespace, accounts: list[str]) -> None:
        self.args, self.accounts = args, accounts
        self.measuring = False
        self.stop = False
        self.latencies: list[float] = []
        self.visibility: list[float] = []
        self.statuses: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.visibility_errors: dict[str, int] = {}
        self.done = 0
        self.sent = 0

    def record(self, key: str, into: dict[str, int]) -> None:
        if self.measuring:
            into[key] = into.get(key, 0) + 1

    async def one(self, client: Client, due: float, sample: bool) -> None:
        account = random.choice(self.accounts)
        try:
            async with asyncio.timeout(self.args.timeout):
                response = await client.request("POST", f"/accounts/{account}/deposits", BODY, HEADERS)
        except FAILURES as error:
            self.record(type(error).__name__, self.errors)
            return
        accepted = time.perf_counter()
        # Counted when the answer arrives inside the measurement window.
        if self.measuring:
            self.latencies.append(accepted - due)
            self.done += 1
        self.record(str(response.status_code), self.statuses)
        if not sample or response.status_code != 200:
            return
        body = response.json()
        try:
            async with asyncio.timeout(self.args.timeout):
                read = await client.get(f"/accounts/{account}", headers={"X-Consistent-With": body["position"]})
        except FAILURES as error:
            self.record(type(error).__name__, self.visibility_errors)
            return
        if read.status_code != 200 or read.json()["version"] < body["version"]:
            self.record(f"{read.status_code}", self.visibility_errors)
            return
        if self.measuring:
            self.visibility.append(time.perf_counter() - accepted)

    async def closed(self, client: Client) -> None:
        async def worker() -> None:
            while not self.stop and self.sent < self.args.max_requests:
                self.sent += 1
                await self.one(client, time.perf_counter(), False)

        await asyncio.gather(*(worker() for _ in range(self.args.concurrency)))

    async def open(self, client: Client) -> None:
        interval = 1 / self.args.rate
        tasks: set[asyncio.Task[None]] = set()
        started = time.perf_counter()
        every = self.args.visibility_every
        while not self.stop and self.sent < self.args.max_requests:
            due = started + self.sent * interval
            delay = due - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))  # yields even when behind schedule
            sample = every > 0 and self.sent % every == 0
            self.sent += 1
            task = asyncio.create_task(self.one(client, due, sample))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=3)
            for task in list(tasks):
                task.cancel()

    async def main(self) -> None:
        args = self.args
        url = urlsplit(args.url)
        if url.hostname not in ("127.0.0.1", "localhost", "::1") or url.port is None:
            raise SystemExit(f"a loopback address with a port, not {args.url}")
        pool = args.concurrency if args.mode == "closed" else args.connections
        client = Client(url.hostname, url.port, max_connections=pool)
        try:
            runner = asyncio.create_task(self.closed(client) if args.mode == "closed" else self.open(client))
            await asyncio.sleep(args.warmup)
            self.measuring = True
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            await asyncio.wait({runner}, timeout=args.duration)
            self.measuring = False
            seconds = time.perf_counter() - started
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            self.stop = True
        finally:
            client.close()
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        ok = self.statuses.get("200", 0)
        result: dict[str, Any] = {
            "mode": args.mode,
            "concurrency": args.concurrency if args.mode == "closed" else None,
            "rate": args.rate if args.mode == "open" else None,
            "seconds": seconds,
            "completed": self.done,
            "ok": ok,
            "per_s": self.done / seconds,
            "ok_per_s": ok / seconds,
            "statuses": self.statuses,
            "errors": self.errors,
            "latency": summary(self.latencies),
            # Share of one core the generator itself used: near 1.0 means it, not the server, was the limit.
            "generator_cpu": cpu / seconds,
        }
        if args.visibility_every:
            result["visibility"] = summary(self.visibility) | {"samples": len(self.visibility)}
            result["visibility_errors"] = self.visibility_errors
        # Done: answer now and leave without waiting for requests still in flight.
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--accounts", required=True, help="file with one account id per line")
    parser.add_argument("--mode", choices=["closed", "open"], default="closed")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=500.0, help="open loop: commands per second")
    parser.add_argument("--connections", type=int, default=256, help="open loop: connection pool size")
    parser.add_argument("--visibility-every", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    with open(args.accounts) as file:
        accounts = [line.strip() for line in file if line.strip()]
    uvloop.run(Run(args, accounts).main())


if __name__ == "__main__":
    main()
