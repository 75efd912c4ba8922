"""`eventline api` serves the API, its docs and a ready probe as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from app.config import Settings
from tests.conftest import ROOT
from tests.support import free_port
from tests.waiting import eventually


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: list[dict[str, Any]] = field(default_factory=list)

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM, a clean exit, and its log: every line of it JSON."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            _, stderr = self.process.communicate(timeout=20)
            # uvicorn re-raises the signal once it has shut down cleanly.
            assert self.process.returncode in (0, -signal.SIGTERM)
            self.log = [orjson.loads(line) for line in stderr.splitlines() if line.strip()]
            assert any(line["message"] == "Application shutdown complete." for line in self.log)
        return self.log


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "EVENTLINE_NAMESPACE": settings.namespace,
        "EVENTLINE_DATABASE_URL": settings.database_url,
        "EVENTLINE_API_PORT": str(port),
    }
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/eventline"), "api"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    running = Server(f"http://127.0.0.1:{port}", process)
    yield running
    running.stop()


async def test_the_api_process_serves_docs_and_is_ready(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:

        async def status(path: str) -> int:
            return (await http.get(path)).status_code

        await eventually(lambda: status("/health/ready"), 200, timeout=60)
        docs = await http.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        schema = (await http.get("/openapi.json")).json()
        assert "/health/ready" in schema["paths"]
    # uvicorn's own lines, the access log included, come out in the same JSON as everything else.
    access = [line for line in server.stop() if line["logger"] == "uvicorn.access"]
    assert any({"method": "GET", "path": "/docs", "status": 200}.items() <= line.items() for line in access), access
