"""The processes a benchmark starts: services under test, the load generator, helpers.

Every process started here is stopped by its owner (SIGTERM, then SIGKILL),
by pid; logs go to files under .local/bench-logs/ so a failure can be read.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from bench.paths import ROOT

LOGS = ROOT / ".local" / "bench-logs"
VENV_BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def eventline_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of an `eventline` process with these settings (as tests/support.py does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLINE_")}
    for name, value in settings.model_dump(mode="json").items():
        env[f"EVENTLINE_{name.upper()}"] = str(value)
    env.update(extra)
    return env


class Service:
    """One process with its log in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.popen: subprocess.Popen[bytes] | None = None
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}.log"

    def start(self) -> Service:
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.kill(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


async def wait_http(url: str, services: list[Service], timeout: float = 90) -> None:
    """Until `url` answers 200 (every service still alive), or RuntimeError."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            for service in services:
                if not service.alive():
                    raise RuntimeError(f"{service.name} exited:\n{service.tail()}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready after {timeout:.0f}s")
            await asyncio.sleep(0.3)


async def open_accounts(base_url: str, count: int, path: Path, timeout: float = 90) -> list[str]:
    """Open `count` accounts (201 each; the first retried until the service decides it) into `path`."""
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=32)) as client:

        async def one() -> str:
            # Resent with its key, as a client should: a keep-alive connection the server closes
            # as it is reused ends in a ReadError, and a fresh cluster answers 503 at first.
            key, last = {"Idempotency-Key": f"bench-{uuid.uuid4()}"}, ""
            while True:
                try:
                    response = await client.post("/accounts", json={"owner": "Bench", "currency": "EUR"}, headers=key)
                    if response.status_code == 201:
                        account_id: str = response.json()["aggregate_id"]
                        return account_id
                    last = f"{response.status_code} {response.text[:300]}"
                except httpx.TransportError as error:
                    last = repr(error)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"opening an account: {last}")
                await asyncio.sleep(0.5)

        ids.append(await one())
        while len(ids) < count:
            ids.extend(await asyncio.gather(*(one() for _ in range(min(32, count - len(ids))))))
    await asyncio.to_thread(path.write_text, "\n".join(ids) + "\n")
    return ids


def run_load(
    base_url: str,
    accounts: Path,
    *,
    mode: str = "closed",
    concurrency: int = 64,
    rate: float = 500,
    visibility_every: int = 0,
    warmup: float = 2,
    duration: float = 10,
) -> dict[str, Any]:
    """One measurement by the load generator, a separate process (bench/load.py)."""
    argv = [
        sys.executable,
        "-m",
        "bench.load",
        "--url",
        base_url,
        "--accounts",
        str(accounts),
        "--mode",
        mode,
        "--concurrency",
        str(concurrency),
        "--rate",
        str(rate),
        "--visibility-every",
        str(visibility_every),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
    ]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=warmup + duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


WRK_SCRIPT = """
local ids = {}
for line in io.lines(os.getenv("BENCH_ACCOUNTS")) do ids[#ids + 1] = line end
math.randomseed(os.time())
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("POST", "/accounts/" .. id .. "/deposits", {["Content-Type"] = "application/json"},
                    os.getenv("BENCH_DEPOSIT_BODY") or '{"amount":1}')
end
"""


def run_wrk(
    base_url: str, accounts: Path, *, concurrency: int, warmup: float = 2, duration: float = 10
) -> dict[str, Any]:
    """A closed-loop measurement with wrk (C, two threads): it cannot become the bottleneck itself.

    The Python generator (bench/load.py) saturates before the services do at 64+
    connections, so closed-loop throughput is measured with wrk when it is installed.
    """
    script = Path(tempfile.mkstemp(prefix="bench-wrk-", suffix=".lua")[1])
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_ACCOUNTS": str(accounts)}
    argv = ["wrk", "-t2", f"-c{concurrency}", "--latency", "-s", str(script), base_url]
    try:
        subprocess.run(
            [*argv[:3], f"-d{max(1, round(warmup))}s", *argv[3:]], env=env, capture_output=True, timeout=warmup + 30
        )
        done = subprocess.run(
            [*argv[:3], f"-d{max(1, round(duration))}s", *argv[3:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=duration + 60,
        )
    finally:
        script.unlink(missing_ok=True)
    return parse_wrk(done.stdout, duration)


def parse_wrk(out: str, duration: float) -> dict[str, Any]:
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def ms(text: str) -> float:
        number = text.rstrip("usm")
        return float(number) * units[text[len(number) :]]

    latency = {
        f"p{line.split()[0].rstrip('%')}_ms": ms(line.split()[1])
        for line in out.splitlines()
        if line.strip().startswith(("50%", "75%", "90%", "99%"))
    }
    requests = next(int(line.split()[0]) for line in out.splitlines() if "requests in" in line)
    failed = sum(int(line.split(":")[1]) for line in out.splitlines() if "Non-2xx" in line)
    latency["max_ms"] = next(
        (
            ms(line.split()[3])
            for line in out.splitlines()
            if line.strip().startswith("Latency") and len(line.split()) >= 4
        ),
        float("nan"),
    )
    return {
        "generator": "wrk",
        "ok": requests - failed,
        "ok_per_s": (requests - failed) / duration,
        "statuses": {"200": requests - failed, "non-2xx": failed} if failed else {"200": requests},
        "errors": {},
        "latency": latency,
        "generator_cpu": float("nan"),
    }
