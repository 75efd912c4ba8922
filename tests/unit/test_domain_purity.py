"""app.domain must stay pure: stdlib and pydantic only, so it runs anywhere without I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "app" / "domain"
THIRD_PARTY = {"pydantic", "pydantic_core", "typing_extensions", "annotated_types"}
# Stdlib modules that mean I/O, a clock or randomness: decisions must be replayable.
IMPURE_STDLIB = {
    "asyncio", "http", "io", "logging", "os", "pathlib", "random", "secrets", "shutil",
    "socket", "sqlite3", "subprocess", "sys", "tempfile", "threading", "time", "urllib", "uuid",
}  # fmt: skip
ALLOWED = (set(sys.stdlib_module_names) - IMPURE_STDLIB) | THIRD_PARTY


def imported_modules(tree: ast.AST) -> list[str]:
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
    return modules


def is_allowed(module: str) -> bool:
    return module.split(".")[0] in ALLOWED or module == "app.domain" or module.startswith("app.domain.")


def test_domain_imports_only_stdlib_and_pydantic() -> None:
    files = sorted(DOMAIN.glob("**/*.py"))
    assert files, f"no domain modules found under {DOMAIN}"

    offenders = [
        f"{path.relative_to(DOMAIN)}: {module}"
        for path in files
        for module in imported_modules(ast.parse(path.read_text(), filename=str(path)))
        if not is_allowed(module)
    ]

    assert offenders == []


def test_the_purity_check_catches_a_forbidden_import() -> None:
    tree = ast.parse("import sqlalchemy, uuid\nfrom app.eventstore import topics\nfrom . import money\n")

    rejected = [m for m in imported_modules(tree) if not is_allowed(m)]
    assert rejected == ["sqlalchemy", "uuid", "app.eventstore"]
