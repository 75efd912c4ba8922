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
