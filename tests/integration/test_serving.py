"""`eventline api` serves the API, its docs and a ready probe as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from app.config import Settings
from tests.conftest import ROOT
from tests.waiting import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "EVENTLINE_NAMESPACE": settings.namespace,
           "EVENTLINE_DATABASE_URL": settings.database_url, "EVENTLINE_API_PORT": str(port)}
    process = subprocess.Popen([str(ROOT / ".venv/bin/eventline"), "api"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    yield f"http://127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    # uvicorn re-raises the signal once it has shut down cleanly.
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in stderr.decode()


async def test_the_api_process_serves_docs_and_is_ready(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        async def status(path: str) -> int:
            return (await http.get(path)).status_code

        await eventually(lambda: status("/health/ready"), 200, timeout=60)
        docs = await http.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        schema = (await http.get("/openapi.json")).json()
        assert "/health/ready" in schema["paths"]
