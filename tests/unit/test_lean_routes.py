"""The lean path of command routes (app/api/lean_routes.py) answers exactly as FastAPI does.

No Kafka, no PostgreSQL: the apps are called as ASGI without their lifespan.
Each case runs twice, once with `LeanRoute.enabled` and once without (every route FastAPI's own),
and the two answers must be equal.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from app.api.lean_routes import LeanRoute
from app.api.state import Clients
from app.api_keys import hash_key
from app.config import Settings
from app.main import create_app

# --- a toy route with every kind of parameter the lean path takes --------------------------------

calls: list[str] = []


class Order(BaseModel):
    amount: int = Field(gt=0)
    note: str | None = Field(default=None, max_length=5)


async def caller(request: Request, x_caller: Annotated[str | None, Header()] = None) -> str:
    calls.append("caller")  # solved once per request, however many depend on it
    return f"{request.method}:{x_caller}"


async def context(
    who: Annotated[str, Depends(caller)],
    key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=8)] = None,
) -> dict[str, Any]:
    return {"who": who, "key": key}


async def role_check(who: Annotated[str, Depends(caller)], x_role: Annotated[str, Header()]) -> None:
    if x_role == "nobody":
        raise PermissionError(who)


def toy_app(lean: bool = True) -> FastAPI:
    router = APIRouter(route_class=LeanRoute)

    @router.post("/orders/{order_id}", dependencies=[Depends(role_check)])
    async def place(
        order_id: uuid.UUID,
        body: Order,
        request: Request,
        ctx: Annotated[dict[str, Any], Depends(context)],
        trace: Annotated[str | None, Header(alias="X-Trace")] = "none",
    ) -> JSONResponse:
        return JSONResponse(
            {"id": str(order_id), "body": body.model_dump(), "ctx": ctx, "trace": trace, "path": request.url.path}
        )

    app = FastAPI()
    app.include_router(router)

    @app.exception_handler(PermissionError)
    async def refused(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"refused": str(error)}, status_code=403)

    return app


def both(build: Any, request: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
    """The same request to the app built with the lean path and without it."""

    async def send(lean: bool) -> httpx.Response:
        # FastAPI builds an included route's handler when the route first serves: the switch holds until then.
        LeanRoute.enabled = lean
        try:
            transport = httpx.ASGITransport(app=build(lean))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(**request)
        finally:
            LeanRoute.enabled = True

    return asyncio.run(send(lean=True)), asyncio.run(send(lean=False))


ORDER = f"/orders/{uuid.uuid4()}"
GOOD_HEADERS = {"X-Role": "clerk", "X-Caller": "ann", "Content-Type": "application/json"}

TOY_CASES: dict[str, dict[str, Any]] = {
    "valid": {"json": {"amount": 3, "note": "hi"}},
    "valid, every header": {"json": {"amount": 3}, "headers": {"Idempotency-Key": "k1", "X-Trace": "t"}},
    "lax int, as FastAPI's": {"json": {"amount": "3"}},
    "vendor json type": {"content": b'{"amount": 1}', "headers": {"Content-Type": "application/vnd.x+json"}},
    "json with a charset": {
        "content": b'{"amount": 1}',
        "headers": {"Content-Type": "application/json; charset=utf-8"},
    },
    "bad uuid": {"url": "/orders/not-a-uuid", "json": {"amount": 1}},
    "uuid without dashes": {"url": f"/orders/{uuid.uuid4().hex}", "json": {"amount": 1}},
    "no body": {"content": b""},
    "not json": {"content": b"{amount"},
    "text/plain": {"content": b'{"amount": 1}', "headers": {"Content-Type": "text/plain"}},
    "no content type": {"content": b'{"amount": 1}', "headers": {"Content-Type": ""}},
    "a rule broken": {"json": {"amount": 0}},
    "too long a note": {"json": {"amount": 1, "note": "toolong"}},
    "an array": {"json": [1]},
    "empty key": {"json": {"amount": 1}, "headers": {"Idempotency-Key": ""}},
    "too long a key": {"json": {"amount": 1}, "headers": {"Idempotency-Key": "x" * 9}},
    "required header missing": {"json": {"amount": 1}, "headers": {"X-Role": None}},
    "refused by the check": {"json": {"amount": 1}, "headers": {"X-Role": "nobody"}},
}


@pytest.mark.parametrize("case", TOY_CASES)
def test_the_lean_path_answers_as_fastapi_does(case: str) -> None:
    given = dict(TOY_CASES[case])
    headers = {**GOOD_HEADERS, **given.pop("headers", {})}
    headers = {name: value for name, value in headers.items() if value is not None}
    request = {"method": "POST", "url": given.pop("url", ORDER), "headers": headers, **given}
    lean, standard = both(toy_app, request)
    assert (lean.status_code, lean.json()) == (standard.status_code, standard.json())


def reads_router() -> APIRouter:
    router = APIRouter(route_class=LeanRoute)

    @router.get("/orders/{order_id}")
    async def look_up(
        order_id: uuid.UUID,
        shelf: Annotated[int, Query()],
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
        since: Annotated[AwareDatetime | None, Query()] = None,
        kind: Annotated[str | None, Query(alias="type", max_length=5, pattern="^[a-z]+$")] = None,
    ) -> JSONResponse:
        when = since.isoformat() if since else None
        return JSONResponse({"id": str(order_id), "limit": limit, "since": when, "kind": kind, "shelf": shelf})

    return router


def toy_reads(lean: bool = True) -> FastAPI:
    app = FastAPI()
    app.include_router(reads_router())
    return app


READ_CASES: dict[str, str] = {
    "only the required": "?shelf=2",
    "every parameter": "?shelf=2&limit=50&since=2026-01-02T03:04:05%2B01:00&type=abc",
    "lax int, as FastAPI's": "?shelf=%202",
    "repeated: the last one": "?shelf=1&shelf=3",
    "unknown parameters ignored": "?shelf=2&what=ever",
    "required missing": "?limit=3",
    "over the limit": "?shelf=2&limit=51",
    "not an int": "?shelf=two",
    "empty int": "?shelf=",
    "a time without its offset": "?shelf=2&since=2026-01-02T03:04:05",
    "too long": "?shelf=2&type=abcdef",
    "against the pattern": "?shelf=2&type=A1",
    "empty string": "?shelf=2&type=",
}


@pytest.mark.parametrize("case", READ_CASES)
def test_the_lean_path_reads_query_parameters_as_fastapi_does(case: str) -> None:
    request = {"method": "GET", "url": f"/orders/{uuid.uuid4()}{READ_CASES[case]}"}
    lean, standard = both(toy_reads, request)
    assert (lean.status_code, lean.json()) == (standard.status_code, standard.json())
    assert [r.lean for r in reads_router().routes if isinstance(r, LeanRoute)] == [True]


def test_a_dependency_is_solved_once_per_request() -> None:
    calls.clear()
    lean, standard = both(toy_app, {"method": "POST", "url": ORDER, "headers": GOOD_HEADERS, "json": {"amount": 1}})
    assert lean.status_code == standard.status_code == 200
    assert calls == ["caller", "caller"]  # once by the lean app, once by FastAPI's


def test_a_dependency_overridden_in_the_app_is_overridden_on_the_lean_path_too() -> None:
    async def someone_else(request: Request) -> str:
        return "someone else"

    app = toy_app()
    app.dependency_overrides[caller] = someone_else
    request = {"method": "POST", "url": ORDER, "headers": GOOD_HEADERS, "json": {"amount": 1}}
    lean, standard = both(lambda lean: app, request)
    assert lean.json()["ctx"]["who"] == standard.json()["ctx"]["who"] == "someone else"


def test_a_route_with_a_parameter_the_lean_path_does_not_take_is_fastapi_s() -> None:
    router = APIRouter(route_class=LeanRoute)

    @router.post("/lean")
    async def lean(request: Request) -> JSONResponse:
        return JSONResponse({})

    @router.post("/query")
    async def with_an_unmarked_query(limit: int = 3) -> JSONResponse:
        return JSONResponse({})

    @router.get("/sub-response")
    async def with_a_sub_response(response: Response) -> JSONResponse:
        return JSONResponse({})

    @router.post("/model")
    async def returning_a_model() -> Order:
        return Order(amount=1)

    assert [r.lean for r in router.routes if isinstance(r, LeanRoute)] == [True, False, False, False]


# --- Eventline's own command routes ---------------------------------------------------------------

WRITER, READER = "writer-key", "reader-key"


def eventline(lean: bool = True) -> FastAPI:
    keys = f"w:writer:{hash_key(WRITER)},r:reader:{hash_key(READER)}"
    app = create_app(Settings(environment="test", api_keys=keys, allow_anonymous=False, lean_routes=lean))
    # What the lifespan would open, none of it used: every case is refused before a command is sent.
    unopened: Any = None
    app.state.eventline.clients = Clients(unopened, unopened, unopened, unopened, unopened, unopened, unopened)
    return app


def test_every_command_route_takes_the_lean_path() -> None:
    from app.api import commands, messaging, subjects

    eventline()  # includes the routers: their routes are built with the role checks
    posts = [r for m in (commands, messaging, subjects) for r in m.router.routes if r.methods & {"POST", "DELETE"}]
    assert len(posts) == 7
    assert all(isinstance(r, LeanRoute) and r.lean for r in posts), [r.path for r in posts if not r.lean]


def test_the_account_read_takes_the_lean_path_and_the_other_reads_fastapi_s() -> None:
    from app.api import queries

    eventline()
    gets = {r.path: r.lean for r in queries.router.routes if isinstance(r, LeanRoute)}
    assert gets.pop("/accounts/{account_id}") is True
    assert gets and not any(gets.values()), gets


ACCOUNT = f"/accounts/{uuid.uuid4()}/deposits"
EVENTLINE_CASES: dict[str, dict[str, Any]] = {
    "no credentials": {"headers": {"Authorization": None}},
    "a reader's key": {"headers": {"Authorization": f"Bearer {READER}"}},
    "a wrong key": {"headers": {"Authorization": "Bearer nope"}},
    "bad account id": {"url": "/accounts/x/deposits", "json": {"amount": 1}},
    "not json": {"content": b"{"},
    "no amount": {"json": {}},
    "negative amount": {"json": {"amount": -1}},
    "NaN, which only json.loads takes": {"content": b'{"amount": NaN}'},
    "empty Idempotency-Key": {"json": {"amount": 1}, "headers": {"Idempotency-Key": ""}},
    "too long an Idempotency-Key": {"json": {"amount": 1}, "headers": {"Idempotency-Key": "k" * 201}},
    "too long a correlation id": {"json": {"amount": 1}, "headers": {"X-Correlation-ID": "c" * 101}},
    "bad If-Match": {"json": {"amount": 1}, "headers": {"If-Match": '"x"'}},
    "unknown participants' shape": {"url": "/conversations", "json": {"participants": "x"}},
    "forget a non-uuid": {"method": "DELETE", "url": "/subjects/x"},
}


@pytest.mark.parametrize("case", EVENTLINE_CASES)
def test_eventline_s_command_routes_refuse_as_before(case: str) -> None:
    defaults = {"Authorization": f"Bearer {WRITER}", "Content-Type": "application/json"}
    assert_refused_alike(EVENTLINE_CASES[case], "POST", ACCOUNT, defaults, "www-authenticate")


def assert_refused_alike(case: dict[str, Any], method: str, url: str, defaults: dict[str, str], header: str) -> None:
    """The case sent to Eventline with and without the lean path: refused, with equal answers."""
    given = dict(case)
    # The same correlation id, else each answer names its own; a header given as None is left out.
    headers = {**defaults, "X-Correlation-ID": "the-same-id", **given.pop("headers", {})}
    headers = {name: value for name, value in headers.items() if value is not None}
    request = {"method": given.pop("method", method), "url": given.pop("url", url), "headers": headers, **given}
    lean, standard = both(eventline, request)
    assert lean.status_code >= 400
    assert (lean.status_code, lean.json(), lean.headers.get(header)) == (
        standard.status_code,
        standard.json(),
        standard.headers.get(header),
    )


READ = f"/accounts/{uuid.uuid4()}"
READ_REFUSALS: dict[str, dict[str, Any]] = {
    "no credentials": {"headers": {"Authorization": None}},
    "a wrong key": {"headers": {"Authorization": "Bearer nope"}},
    "bad account id": {"url": "/accounts/x"},
    "version 0": {"params": {"version": "0"}},
    "version not a number": {"params": {"version": "two"}},
    "as_of without its offset": {"params": {"as_of": "2026-01-02T03:04:05"}},
    "as_of and version": {"params": {"as_of": "2026-01-02T03:04:05Z", "version": "2"}},  # the endpoint's own 400
    "too long a token": {"headers": {"X-Consistent-With": "0:1" * 1000}},
}


@pytest.mark.parametrize("case", READ_REFUSALS)
def test_the_account_read_refuses_as_before(case: str) -> None:
    assert_refused_alike(READ_REFUSALS[case], "GET", READ, {"Authorization": f"Bearer {READER}"}, "content-type")
