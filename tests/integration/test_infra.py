"""scripts/infra.py knows which servers it started: another checkout's are refused, never used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_a_server_this_checkout_did_not_start_is_refused_with_its_process_named(tmp_path: Path) -> None:
    # Another checkout's view: its own .local, the same ports as the servers this run started.
    env = {**os.environ, "EVENTLINE_LOCAL_DIR": str(tmp_path / "other-checkout" / ".local")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "infra.py"), "up"], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    message = result.stderr
    assert "port 127.0.0.1:" in message and "did not start" in message
    assert "pid " in message and ".local" in message  # which process holds the port
    assert "KAFKA_PORT=" in message  # how to choose other ports
    assert not (tmp_path / "other-checkout" / ".local" / "kafka" / "kafka.pid").exists()


def test_the_servers_this_checkout_started_are_its_own() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "infra.py"), "up"], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout
