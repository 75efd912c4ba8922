"""Notification streams: 2,000 end users streaming from one API process while deposits flow.

Processor, projector and API run as processes on a fresh namespace, with end-user tokens signed by
a key pair made here (the API reads its public half as a JWKS) and one service key. Each user
opens an account with their own token; then the stream generator (bench/sse_load.py, a process of
its own) measures delivery with one service stream (the baseline), then with one stream per user
beside it, and the API's memory per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from app.api_keys import hash_key
from bench.paths import ROOT
from bench.processes import free_port
from bench.setup import bench_settings, delete_namespace_topics, drop_database
from bench.write_side import eventline_services, running

ISSUER, AUDIENCE, KID = "bench-idp", "eventline", "bench-1"
SERVICE_KEY = "bench-service-key"


class Issuer:
    """Signs the users' tokens (ES256: quick to sign two thousand of)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> str:
        public = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        return json.dumps({"keys": [public | {"kid": KID, "use": "sig", "alg": "ES256"}]})

    def token(self, subject: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "nbf": now, "exp": now + 3600}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": KID})


async def open_user_accounts(base_url: str, tokens: list[str], timeout: float = 120) -> list[str]:
    """Each user opens an account with their token: `account_id token position` lines."""
    deadline = time.monotonic() + timeout
    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=32)) as client:

        async def one(token: str) -> str:
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"open-{token[-24:]}"}
            last = ""
            async with gate:
                while time.monotonic() < deadline:
                    try:
                        response = await client.post(
                            "/accounts", json={"owner": "User", "currency": "EUR"}, headers=headers
                        )
                        if response.status_code == 201:
                            opened = response.json()
                            return f"{opened['aggregate_id']} {token} {opened['position']}"
                        last = f"{response.status_code} {response.text[:300]}"
                    except httpx.TransportError as error:
                        last = repr(error)
                    await asyncio.sleep(0.5)
            raise RuntimeError(f"opening a user's account: {last}")

        return list(await asyncio.gather(*(one(token) for token in tokens)))


async def measure_streams(plan: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    issuer = Issuer()
    settings = await bench_settings(
        token_issuer=ISSUER,
        token_audience=AUDIENCE,
        token_jwks=issuer.jwks(),
        api_keys=f"bench:reader:{hash_key(SERVICE_KEY)}",
        allow_anonymous=False,
        notification_streams_max=plan["streams"] + 100,
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    services = eventline_services(settings, port, "split")
    users_file = Path(tempfile.mkstemp(prefix="bench-users-", suffix=".txt")[1])
    try:
        async with running(services, f"{base}/health/ready"):
            say(f"  {plan['streams']:,} users open an account each …")
            tokens = [issuer.token(f"user-{n}") for n in range(plan["streams"])]
            lines = await open_user_accounts(base, tokens)
            await asyncio.to_thread(users_file.write_text, "\n".join(lines) + "\n")
            api = next(s for s in services if s.name == "eventline-api")
            argv = [sys.executable, "-m", "bench.sse_load", "--url", base, "--users", str(users_file)]
            argv += ["--service-token", SERVICE_KEY, "--api-pid", str(api.pid)]
            argv += ["--rate", str(plan["stream_rate"]), "--duration", str(plan["duration"])]
            argv += ["--warmup", str(plan["warmup"])]
            say(f"  streams: baseline, then {plan['streams']:,} streams, deposits at {plan['stream_rate']:.0f}/s …")
            done = await asyncio.to_thread(
                subprocess.run, argv, cwd=ROOT, capture_output=True, text=True, timeout=4 * plan["duration"] + 240
            )
            if done.returncode != 0:
                raise RuntimeError(f"stream generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        await asyncio.to_thread(users_file.unlink, missing_ok=True)
        with contextlib.suppress(Exception):
            await delete_namespace_topics(settings)
        await drop_database(settings)
    loaded, baseline = result["loaded"], result["baseline"]
    say(
        f"  {result['streams']:,} streams: delivery p50 {loaded['latency']['p50_ms']:.1f} ms, "
        f"p99 {loaded['latency']['p99_ms']:.1f} ms ({loaded['delivered']}/{loaded['sent']}); "
        f"one stream alone p99 {baseline['latency']['p99_ms']:.1f} ms; "
        f"{result['bytes_per_stream'] / 1024:.1f} KiB per stream"
    )
    return result
