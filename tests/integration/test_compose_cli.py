"""docker-compose.yml as a compose CLI reads it: Debian's `docker-compose config`, no Docker engine needed.

The CLI is installed by `scripts/ensure_compose.sh` when missing (as the browser
is for the e2e tests); a missing CLI fails the setup, it is never skipped.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"


def compose_cli() -> list[str]:
    subprocess.run([str(ROOT / "scripts" / "ensure_compose.sh")], check=True, timeout=600)
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    executable = shutil.which("docker-compose")
    assert executable, "scripts/ensure_compose.sh left no compose CLI"
    return [executable]


def compose_config(cli: list[str], file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "EVENTLINE_API_KEYS"} | env
    return subprocess.run(
        [*cli, "-f", str(file), "config", "-q"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_the_compose_cli_accepts_the_file() -> None:
    cli = compose_cli()
    result = compose_config(cli, COMPOSE_FILE, EVENTLINE_API_KEYS="dev:admin:" + "0" * 64)
    assert result.returncode == 0, f"`{shlex.join(cli)} config -q` failed:\n{result.stderr}{result.stdout}"


def test_compose_refuses_to_run_the_api_without_keys() -> None:
    """Fail closed: the API would refuse to start without keys; compose says so before anything starts."""
    result = compose_config(compose_cli(), COMPOSE_FILE)
    assert result.returncode != 0
    assert "set EVENTLINE_API_KEYS" in result.stderr + result.stdout


def test_the_compose_cli_refuses_a_broken_file(tmp_path: Path) -> None:
    """The check can fail: a service that depends on one that does not exist is refused."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text() + "\n  orphan:\n    image: busybox\n    depends_on: [nowhere]\n")
    cli = compose_cli()
    result = compose_config(cli, broken, EVENTLINE_API_KEYS="dev:admin:" + "0" * 64)
    assert result.returncode != 0
