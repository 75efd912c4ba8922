"""Access control with API keys and roles, body limits, CORS; and what stays open."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from app.api_keys import hash_key, parse_api_keys
from app.config import Settings
from tests.support import api_client, fresh_namespace

KEYS = {"reader": "key-of-the-reader", "writer": "key-of-the-writer", "admin": "key-of-the-admin"}


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = ",".join(f"{role}-client:{role}:{hash_key(key)}" for role, key in KEYS.items())
    ns = await fresh_namespace(
        settings, api_keys=configured, cors_origins="https://app.example", command_timeout_s=0.5, max_body_bytes=2048
    )
    async with api_client(ns) as http:
        yield http


def as_role(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


ACCOUNT = f"/accounts/{uuid.uuid4()}"
ROUTES = [  # (method, path, body, least role)
    ("GET", ACCOUNT, None, "reader"),
    ("GET", "/events", None, "reader"),
    ("GET", "/pricing", None, "reader"),
    ("POST", "/accounts", {"owner": "Ada", "currency": "EUR"}, "writer"),
    ("POST", f"{ACCOUNT}/deposits", {"amount": 1}, "writer"),
    ("POST", "/conversations", {"participants": [str(uuid.uuid4()), str(uuid.uuid4())]}, "writer"),
    ("GET", "/projections", None, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "least"), ROUTES)
async def test_each_route_needs_its_role(
    client: httpx.AsyncClient, method: str, path: str, body: object, least: str
) -> None:
    anonymous = await client.request(method, path, json=body)
    wrong = await client.request(method, path, json=body, headers={"Authorization": "Bearer not-a-key"})
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.headers["content-type"] == "application/problem+json"
    for role in KEYS:
        response = await client.request(method, path, json=body, headers=as_role(role))
        allowed = ["reader", "writer", "admin"].index(role) >= ["reader", "writer", "admin"].index(least)
        assert (response.status_code not in (401, 403)) == allowed, (role, response.status_code, response.text)
        if not allowed:
            assert response.status_code == 403


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/docs", "/openapi.json"])
async def test_health_and_docs_stay_open(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


async def test_no_key_appears_in_an_error_body(client: httpx.AsyncClient) -> None:
    response = await client.get(ACCOUNT, headers={"Authorization": "Bearer secret-attempt-123"})
    assert "secret-attempt-123" not in response.text


async def test_an_oversized_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/accounts",
        content=b'{"owner": "' + b"x" * 4096 + b'", "currency": "EUR"}',
        headers={**as_role("writer"), "content-type": "application/json"},
    )
    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 1024

    streamed = await client.post(
        "/accounts", content=chunks(), headers={**as_role("writer"), "content-type": "application/json"}
    )
    assert streamed.status_code == 413


async def test_cors_allows_only_configured_origins(client: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = await client.options("/accounts", headers={"Origin": "https://app.example", **preflight})
    refused = await client.options("/accounts", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
    assert "access-control-allow-origin" not in refused.headers


def test_production_refuses_to_start_without_keys() -> None:
    with pytest.raises(ValueError, match="EVENTLINE_API_KEYS must be set in production"):
        Settings(environment="production")


@pytest.mark.parametrize("raw", ["a:root:" + "0" * 64, "a:reader:short", "a:reader:" + "z" * 64, "a:b"])
def test_malformed_key_settings_are_refused_without_echoing_them(raw: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_api_keys(raw)
    assert raw.split(":")[-1] not in str(refused.value) or len(raw.split(":")[-1]) < 3


# Open by design: probes for the orchestrator, and the published contracts.
# /health/stalls is for monitors, like /health/ready: it names stalled projections and counts waiting
# messages, and shows no data.
OPEN_BY_DESIGN = {
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/health/stalls"),
    ("GET", "/schemas/events"),
}


async def test_every_route_of_the_app_needs_a_key_unless_open_by_design(client: httpx.AsyncClient) -> None:
    """Derived from the app's own routes: a new route that forgets its guard fails here, unlisted."""
    spec = (await client.get("/openapi.json")).json()
    open_routes = set()
    for path, methods in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        for method in methods:
            answer = await client.request(method.upper(), concrete, json={})
            if answer.status_code != 401:
                open_routes.add((method.upper(), path))
    assert len(spec["paths"]) > 15
    assert open_routes == OPEN_BY_DESIGN
