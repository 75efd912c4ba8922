"""The OpenAPI document serves client generators: short operation ids, one shared problem schema."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from app.api.errors import PROBLEM_JSON
from app.config import Settings
from app.main import create_app


@cache
def spec() -> dict[str, Any]:
    schema: dict[str, Any] = create_app(Settings(environment="test")).openapi()  # no I/O: the lifespan is not run
    return schema


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec()["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_operation_ids_are_the_short_unique_route_names() -> None:
    ids = {(method, path): op["operationId"] for method, path, op in operations()}

    assert ids[("post", "/accounts/{account_id}/deposits")] == "deposit"
    assert ids[("post", "/accounts")] == "open_account"
    assert len(set(ids.values())) == len(ids)
    assert all(re.fullmatch(r"[a-z][a-z_]{2,30}", name) for name in ids.values()), sorted(ids.values())


def test_every_problem_response_refers_to_the_one_problem_component() -> None:
    problems = [
        response["content"][PROBLEM_JSON]["schema"]
        for _, _, op in operations()
        for response in op.get("responses", {}).values()
        if PROBLEM_JSON in response.get("content", {})
    ]

    assert len(problems) > 40
    assert all(schema == {"$ref": "#/components/schemas/ProblemDetails"} for schema in problems)
    component = spec()["components"]["schemas"]["ProblemDetails"]
    assert {"type", "title", "status"} <= set(component["required"])
