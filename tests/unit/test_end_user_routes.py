"""Every route that authenticates has a decision for end users: a rule, or closed on purpose."""

from __future__ import annotations

from app.api.end_users import CLOSED, RULES
from app.config import Settings
from app.main import create_app


def authenticated_routes() -> set[tuple[str, str]]:
    paths = create_app(Settings(allow_anonymous=True)).openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method, op in ops.items() if "security" in op}


def test_every_authenticated_route_is_decided_for_end_users() -> None:
    routes = authenticated_routes()
    undecided = routes - set(RULES) - CLOSED
    assert not undecided, f"say in app/api/end_users.py what an end user may do here: {sorted(undecided)}"
    assert not set(RULES) & CLOSED
    assert set(RULES) | CLOSED <= routes  # no rule for a route that is gone


def test_the_check_can_fail() -> None:
    """A route missing from both tables is found (as a new route would be)."""
    some_route = next(iter(RULES))
    assert some_route in authenticated_routes() - (set(RULES) - {some_route}) - CLOSED
