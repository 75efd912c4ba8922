"""docker-compose.yml (and the secured profile over it) as a compose CLI reads them: Debian's
`docker-compose config`, no Docker engine needed.

The CLI is installed by `scripts/ensure_compose.sh` when missing (as the browser
is for the e2e tests); a missing CLI fails the setup, it is never skipped.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
SECURED_FILE = ROOT / "docker-compose.secured.yml"  # the secured profile, over COMPOSE_FILE
KEYS = "dev:admin:" + "0" * 64
PROCESSES = ("api", "processor", "projector", "saga")
# Who each Eventline service is to the broker: a process its own principal; migrate creates the topics.
PRINCIPALS = {**{name: name for name in PROCESSES}, "migrate": "admin"}
PASSWORDS = {f"EVENTLINE_KAFKA_{user.upper()}_PASSWORD": f"{user}-secret" for user in {*PRINCIPALS.values()}}


def compose_cli() -> list[str]:
    subprocess.run([str(ROOT / "scripts" / "ensure_compose.sh")], check=True, timeout=600)
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    executable = shutil.which("docker-compose")
    assert executable, "scripts/ensure_compose.sh left no compose CLI"
    return [executable]


def compose(cli: list[str], files: list[Path], *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`compose -f … <args>` over `files`, with only the secrets in `env` (none of the caller's own)."""
    secrets = {"EVENTLINE_API_KEYS", *PASSWORDS}
    environment = {k: v for k, v in os.environ.items() if k not in secrets} | env
    return subprocess.run(
        [*cli, *(arg for file in files for arg in ("-f", str(file))), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def compose_config(cli: list[str], file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return compose(cli, [file], "config", "-q", env=env)


def test_the_compose_cli_accepts_the_file() -> None:
    cli = compose_cli()
    result = compose_config(cli, COMPOSE_FILE, EVENTLINE_API_KEYS=KEYS)
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
    result = compose_config(cli, broken, EVENTLINE_API_KEYS=KEYS)
    assert result.returncode != 0


@pytest.fixture(scope="module")
def secured() -> dict[str, dict[str, Any]]:
    """The services of the secured profile, as the compose CLI resolves the two files."""
    cli = compose_cli()
    result = compose(cli, [COMPOSE_FILE, SECURED_FILE], "config", env={"EVENTLINE_API_KEYS": KEYS, **PASSWORDS})
    assert result.returncode == 0, f"`{shlex.join(cli)} config` failed:\n{result.stderr}{result.stdout}"
    services: dict[str, dict[str, Any]] = yaml.safe_load(result.stdout)["services"]
    return services


def test_in_the_secured_profile_each_process_runs_apart_as_its_own_principal(
    secured: dict[str, dict[str, Any]],
) -> None:
    for name, user in PRINCIPALS.items():
        environment = secured[name]["environment"]
        assert environment["EVENTLINE_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT", name
        assert environment["EVENTLINE_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert (environment["EVENTLINE_KAFKA_USERNAME"], environment["EVENTLINE_KAFKA_PASSWORD"]) == (
            user,
            f"{user}-secret",
        ), name
    # Apart: a service per process running its own subcommand, never `eventline run` (all four in one).
    assert {name: secured[name]["command"] for name in PROCESSES} == {name: [name] for name in PROCESSES}


def test_the_secured_broker_authenticates_every_listener_and_authorizes_by_acl(
    secured: dict[str, dict[str, Any]],
) -> None:
    kafka = secured["kafka"]["environment"]
    protocols = dict(pair.split(":") for pair in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}, protocols  # no listener lets a stranger in
    assert "CLIENTS://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert kafka["KAFKA_LISTENER_NAME_CLIENTS_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert str(kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"]) == "false"
    assert kafka["KAFKA_SUPER_USERS"] == "User:admin"


def test_the_secured_profile_grants_the_acls_of_kafka_secured_before_anything_connects(
    secured: dict[str, dict[str, Any]],
) -> None:
    """The one-shot kafka-grants service grants, with kafka-acls, exactly the rules scripts/kafka_secured.py
    grants on loopback (for the namespace `eventline`); the topics are created only after it."""
    printed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "kafka_secured.py"), "acls", "eventline"],
        capture_output=True,
        text=True,
        check=True,
    )
    script = secured["kafka-grants"]["command"][-1]
    granted = [line.removeprefix("acl ") for line in script.splitlines() if line.startswith("acl ")]
    assert sorted(granted) == sorted(printed.stdout.splitlines())
    assert "/opt/kafka/bin/kafka-acls.sh" in script and secured["kafka-grants"]["image"].startswith("apache/kafka:")
    assert secured["migrate"]["depends_on"]["kafka-grants"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("variable", sorted(PASSWORDS))
def test_the_secured_profile_refuses_to_start_without_each_password(variable: str) -> None:
    """No password has a default: without one, compose says which before anything starts."""
    given = {k: v for k, v in PASSWORDS.items() if k != variable}
    result = compose(
        compose_cli(), [COMPOSE_FILE, SECURED_FILE], "config", "-q", env={"EVENTLINE_API_KEYS": KEYS, **given}
    )
    assert result.returncode != 0
    assert f"set {variable}" in result.stderr + result.stdout
