"""docker-compose.yml: the services exist, run real `eventline` subcommands, and wire up.

All but the last test only read the file. The last asks a compose CLI to validate
it (`config -q`) and is skipped, with the reason shown, where none is installed.
"""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from app.cli import cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

INFRASTRUCTURE = {"kafka", "postgres"}
PROCESSES = {"api", "processor", "projector", "saga"}
EVENTLINE_SERVICES = PROCESSES | {"migrate"}


@cache
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(compose, dict)
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def resolve(args: list[str]) -> object:
    """The command `eventline <args>` would run; fails the test if there is none.

    Walks the groups by their `commands` mapping: Typer ships its own copy of
    click, so `isinstance(..., click.Group)` would not recognise its groups.
    """
    command: Any = typer.main.get_command(cli)
    for arg in args:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            break  # a leaf command: the remaining args are its own
        assert arg in subcommands, (
            f"`eventline {shlex.join(args)}`: {arg!r} is not a subcommand of `{command.name or 'eventline'}`"
            f" (it has: {', '.join(sorted(subcommands))})"
        )
        command = subcommands[arg]
    assert getattr(command, "commands", None) is None, f"`eventline {shlex.join(args)}` is a group, not a command"
    return command


def as_list(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else list(value)


def test_services_exist() -> None:
    missing = (INFRASTRUCTURE | EVENTLINE_SERVICES) - services().keys()
    assert not missing, f"missing services: {sorted(missing)}"


NOT_YET_BUILT: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=NOT_YET_BUILT[name]))
        if name in NOT_YET_BUILT
        else name
        for name in sorted(PROCESSES)
    ],
)
def test_process_runs_its_cli_subcommand(name: str) -> None:
    service = services()[name]
    # The image's ENTRYPOINT is `eventline`; the service's command is the subcommand.
    assert "build" in service
    assert "entrypoint" not in service, f"{name} must keep the image's `eventline` entrypoint"
    args = as_list(service["command"])
    assert args[0] == name, f"service {name} runs `eventline {shlex.join(args)}`"
    resolve(args)
    assert service["environment"]["EVENTLINE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert "@postgres:5432/" in service["environment"]["EVENTLINE_DATABASE_URL"]
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_migrate_runs_alembic_then_creates_topics() -> None:
    migrate = services()["migrate"]
    steps = [shlex.split(step) for step in as_list(migrate["command"])[-1].split("&&")]
    assert steps[0] == ["alembic", "upgrade", "head"]
    eventline_steps = [step[1:] for step in steps if step[0] == "eventline"]
    assert eventline_steps == [["topics", "create"]]
    for args in eventline_steps:
        resolve(args)
    healthy = {target for target, dep in migrate["depends_on"].items() if dep["condition"] == "service_healthy"}
    assert healthy == INFRASTRUCTURE


def test_kafka_does_not_auto_create_topics() -> None:
    # Topics are created only by `eventline topics create`, with their partition counts and configs.
    environment = services()["kafka"]["environment"]
    assert str(environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"


def test_every_depends_on_target_exists() -> None:
    for name, service in services().items():
        depends_on = service.get("depends_on", [])
        for target in depends_on:  # a list of names or a mapping keyed by them
            assert target in services(), f"{name} depends on unknown service {target!r}"
