"""The layers import inward only: the HTTP edge knows the rest, nothing knows the HTTP edge.

- app.api may use everything below it (the command bus, the read side's queries, the domain);
- projections (the read side) use the envelopes and the domain, never the HTTP edge or the saga;
- app.sagas uses the envelopes and the domain, never the HTTP edge or the read side;
- app.eventstore (the write side's Kafka edge) uses the domain, never the database or an edge;
- app.privacy (sealing personal fields, the data keys) uses the domain and the envelopes, like the eventstore;
- app.domain is pure (test_domain_purity.py).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_domain_purity import imported_modules

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "app/eventstore": ("app.api", "app.sagas", "app.cli", "projections", "sqlalchemy", "asyncpg", "fastapi"),
    "app/sagas": ("app.api", "app.cli", "projections", "sqlalchemy", "fastapi"),
    "projections": ("app.api", "app.sagas", "app.cli", "fastapi"),
    "app/domain": ("app.api", "app.eventstore", "app.sagas", "projections"),
    "app/privacy": ("app.api", "app.sagas", "app.cli", "projections", "sqlalchemy", "asyncpg", "fastapi"),
}


def crossings(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for module in imported_modules(ast.parse(path.read_text(), str(path))):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_a_layer_imports_only_inward(folder: str) -> None:
    assert crossings(folder, FORBIDDEN[folder]) == []


def test_the_check_sees_a_crossing() -> None:
    """The check can fail: the API does import the read side, so forbidding it is caught."""
    assert crossings("app/api", ("projections",)) != []


def modules_loaded_by(statement: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running `statement`."""
    shown = subprocess.run(
        [sys.executable, "-c", f"{statement}; import sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return {name.split(".")[0] for name in shown.split()}


def test_starting_a_processor_loads_no_web_or_database_library() -> None:
    """`eventline processor` loads the command line and the processor, nothing of the HTTP edge or the
    read side: those cost most of a second at every start (docs/write-path.md, "How soon a processor
    decides"). The command line imports what each command runs inside that command."""
    loaded = modules_loaded_by("import app.cli, app.eventstore.processor, app.observability.tracing")
    assert loaded & {"fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "projections"} == set()
    assert {"aiokafka", "typer"} <= loaded  # the check sees what is loaded
