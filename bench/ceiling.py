"""What Kafka itself allows: the ceilings a command path over Kafka cannot beat.

- `python -m bench.ceiling --topic T --seconds S` (a process of its own, on
  uvloop, like the API): a raw aiokafka producer with the API's settings
  (acks=all, idempotent), sending records the size of a deposit command with
  the same keys and partitioning: first pipelined (as fast as the client goes),
  then 64 concurrent `send_and_wait` callers (how the API produces: each
  request awaits its own send). Prints JSON.
- `kafka_perf()`: Kafka's own `org.apache.kafka.tools.ProducerPerformance`
  (kafka-tools, the broker's version, fetched by bench/kafka-tools/pom.xml
  into .local/bench-kafka-tools/) with the same record size and settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import deque
from typing import Any

import uvloop
from aiokafka import AIOKafkaProducer

from app.domain import accounts
from app.eventstore.envelope import CommandEnvelope, new_command
from app.eventstore.partitioner import partition_for
from bench.paths import ROOT

TOOLS_POM = ROOT / "bench" / "kafka-tools" / "pom.xml"
TOOLS_LIBS = ROOT / ".local" / "bench-kafka-tools"


def deposit_command(account_id: str) -> CommandEnvelope:
    """A deposit of 1 exactly as the API builds it."""
    return new_command(accounts.Deposit(amount=1, reference=None), account_id, principal="anonymous")


def deposit_size() -> int:
    return len(deposit_command(str(uuid.uuid4())).encode())


async def measure(bootstrap: str, topic: str, partitions: int, seconds: float) -> dict[str, Any]:
    ids = [str(uuid.uuid4()) for _ in range(1000)]
    records = [(deposit_command(i).encode(), i.encode(), partition_for(i, partitions)) for i in ids]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        # Pipelined: keep up to 5,000 sends in flight.
        sent, started = 0, time.perf_counter()
        in_flight: deque[asyncio.Future[Any]] = deque()
        while time.perf_counter() - started < seconds:
            value, key, partition = random.choice(records)
            in_flight.append(await producer.send(topic, value, key=key, partition=partition))
            sent += 1
            if len(in_flight) >= 5000:
                await in_flight.popleft()
        await asyncio.gather(*in_flight)
        pipelined = sent / (time.perf_counter() - started)

        # 64 callers, each awaiting its own send (the API's pattern).
        done, stop = 0, time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                value, key, partition = random.choice(records)
                await producer.send_and_wait(topic, value, key=key, partition=partition)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(64)))
        awaited = done / (time.perf_counter() - started)
    finally:
        await producer.stop()
    return {
        "record_bytes": len(records[0][0]),
        "pipelined_msgs_per_s": pipelined,
        "send_and_wait_64_msgs_per_s": awaited,
    }


def fetch_tools() -> bool:
    """kafka-tools and its dependencies into .local/bench-kafka-tools/ (never the broker's libs)."""
    stamp = TOOLS_LIBS / ".pom-stamp"
    if stamp.exists() and stamp.read_text() == TOOLS_POM.read_text():
        return True
    if shutil.which("mvn") is None:
        return False
    shutil.rmtree(TOOLS_LIBS, ignore_errors=True)
    done = subprocess.run(
        ["mvn", "-B", "-q", "-f", str(TOOLS_POM), "dependency:copy-dependencies", f"-DoutputDirectory={TOOLS_LIBS}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        print(done.stdout[-3000:], file=sys.stderr)
        return False
    stamp.write_text(TOOLS_POM.read_text())
    return True


SUMMARY = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec .*?([\d.]+) ms avg latency, ([\d.]+) ms max latency"
    r"(?:, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th)?"
)


def kafka_perf(bootstrap: str, topic: str, records: int, record_size: int) -> dict[str, Any] | None:
    if not fetch_tools() or shutil.which("java") is None:
        return None
    argv = [
        "java",
        "-Xmx512m",
        "-cp",
        f"{TOOLS_LIBS}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(record_size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        "acks=all",
        "enable.idempotence=true",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    matches = SUMMARY.findall(done.stdout)
    if done.returncode != 0 or not matches:
        print(f"ProducerPerformance failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}", file=sys.stderr)
        return None
    last = matches[-1]
    result: dict[str, Any] = {
        "records": int(last[0]),
        "msgs_per_s": float(last[1]),
        "avg_latency_ms": float(last[2]),
        "max_latency_ms": float(last[3]),
    }
    if last[4]:
        result |= {"p50_ms": int(last[4]), "p95_ms": int(last[5]), "p99_ms": int(last[6])}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    result = uvloop.run(measure(args.bootstrap, args.topic, args.partitions, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
