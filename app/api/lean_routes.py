"""Routes (the commands', the account read) that take a few kinds of parameters without FastAPI's general solving.

A deposit spent about 640 µs of the API's CPU in-process, more than half of it in
FastAPI working out each request's parameters and dependencies in general (nested
routers, caching keys, sequence checks, per-parameter validation): the command routes
need little of that. `LeanRoute` is an `APIRoute` that, once when the route is built,
plans how to get each parameter of its endpoint and of its dependencies:

- the `Request`;
- a path parameter of a plain type (`uuid.UUID`), validated by pydantic as FastAPI does;
- one JSON body, a pydantic model, validated from the body's bytes;
- a header (`Header(...)`, its alias or its name with dashes, its length limits kept);
- a query parameter marked `Query(...)` that takes one value (its alias or its name, its limits kept);
- `Depends(...)` on an async function (or an object with an async `__call__`, such as
  `HTTPBearer`) whose own parameters are of these kinds; solved once per request, like FastAPI.

The route's dependencies (the role checks of `require`) run first, as in FastAPI. When a
request is anything but valid — a value that does not validate, a body that is not JSON,
an unusual content type, a missing header — the lean path stops before the endpoint runs
and hands the request to FastAPI's own handler, which answers it exactly as it always did:
errors never differ, only valid requests take the short path. A route with any other kind of
parameter (a query without `Query(...)`, `yield` dependencies, forms, a sub-response, an
endpoint that returns a model) is served by FastAPI's handler alone; `lean` tells which
(tests/unit/test_lean_routes.py asserts the command routes and the account read are lean and
that the two paths agree).

Measured: about 690 → 440 µs of the API's CPU per deposit in-process, 1.10–1.16× the commands/s
at 64 clients end to end; about 1.5 → 1.2 ms per account read in-process (docs/write-path.md,
The command route). `EVENTLINE_LEAN_ROUTES=false`
(`enabled`, set by create_app) turns it off, for that A/B.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import orjson
from fastapi import params

# The effective route (its router's dependencies merged in) FastAPI is building a handler for:
# FastAPI passes it to `get_route_handler` only this way.
from fastapi.routing import APIRoute, _effective_route_context_var
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

Getter = Callable[[Request, dict[Any, Any]], Awaitable[Any]]


class NotLean(Exception):
    """This request needs FastAPI's full handling (it will answer the error as FastAPI does)."""


class Unplannable(Exception):
    """The route has a parameter the lean path does not take: FastAPI's handler serves it."""


def is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


@dataclass(frozen=True)
class Plan:
    """How to get each keyword argument of one callable."""

    call: Callable[..., Awaitable[Any]]
    arguments: tuple[tuple[str, Getter], ...]

    async def run(self, request: Request, solved: dict[Any, Any]) -> Any:
        return await self.call(**{name: await get(request, solved) for name, get in self.arguments})


class Planner:
    def __init__(self, path_parameters: set[str]) -> None:
        self.path_parameters = path_parameters
        self.body_taken = False

    def plan(self, call: Callable[..., Any]) -> Plan:
        function = call if inspect.isfunction(call) else getattr(call, "__call__", None)  # noqa: B004
        if function is None or not inspect.iscoroutinefunction(function):
            raise Unplannable(f"{call!r} is not async")  # FastAPI would run it in a thread
        try:
            hints = typing.get_type_hints(function, include_extras=True)
        except NameError as unresolved:  # an annotation imported only for type checkers
            raise Unplannable(str(unresolved)) from None
        arguments = tuple(
            (name, self.getter(name, hints.get(name, Any), parameter.default))
            for name, parameter in inspect.signature(call).parameters.items()
        )
        return Plan(call, arguments)

    def getter(self, name: str, annotation: Any, default: Any) -> Getter:
        kind, marker = annotation, default
        if typing.get_origin(annotation) is Annotated:
            kind, *extras = typing.get_args(annotation)
            markers = [extra for extra in extras if isinstance(extra, (params.Depends, params.Param, params.Body))]
            if len(markers) > 1:
                raise Unplannable(f"{name}: more than one marker")
            marker = markers[0] if markers else default
        if isinstance(marker, params.Security):
            raise Unplannable(f"{name}: security scopes")
        if isinstance(marker, params.Depends):
            return self.dependency(name, marker, kind)
        if isinstance(marker, params.Header):
            return header(name, kind, marker, default)
        if isinstance(marker, params.Query):
            return query(name, kind, marker, default)
        if isinstance(marker, FieldInfo):  # Cookie, Path(...) with limits, Body(...), Form, File
            raise Unplannable(f"{name}: {type(marker).__name__}")
        if inspect.isclass(kind) and issubclass(Request, kind) and issubclass(kind, HTTPConnection):
            return the_request
        if name in self.path_parameters:
            return path_parameter(name, kind)
        if inspect.isclass(kind) and issubclass(kind, BaseModel) and not self.body_taken:
            self.body_taken = True  # a second body would be embedded by FastAPI: not planned
            return json_body(kind)
        raise Unplannable(f"{name}: {annotation!r}")

    def dependency(self, name: str, marker: params.Depends, kind: Any) -> Getter:
        call = marker.dependency or kind
        if not marker.use_cache or call is None:
            raise Unplannable(f"{name}: uncached dependency")
        plan = self.plan(call)

        async def solve(request: Request, solved: dict[Any, Any]) -> Any:
            if call not in solved:  # once per request, as FastAPI caches a dependency
                solved[call] = await plan.run(request, solved)
            return solved[call]

        return solve


async def the_request(request: Request, solved: dict[Any, Any]) -> Request:
    return request


def validated(adapter: TypeAdapter[Any], value: Any) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        raise NotLean from None


def path_parameter(name: str, kind: Any) -> Getter:
    adapter: TypeAdapter[Any] = TypeAdapter(kind)

    async def get(request: Request, solved: dict[Any, Any]) -> Any:
        return validated(adapter, request.path_params[name])

    return get


def header(name: str, kind: Any, marker: params.Header, default: Any) -> Getter:
    wire_name = (marker.alias or (name.replace("_", "-") if marker.convert_underscores else name)).lower()
    return named_value(name, kind, marker, default, lambda request: request.headers.get(wire_name))


def query(name: str, kind: Any, marker: params.Query, default: Any) -> Getter:
    wire_name = marker.alias or name
    # The last of a repeated parameter, as FastAPI takes it for a single value.
    return named_value(name, kind, marker, default, lambda request: request.query_params.get(wire_name))


def named_value(
    name: str, kind: Any, marker: params.Param, default: Any, read: Callable[[Request], str | None]
) -> Getter:
    """A header's or a query parameter's value, validated with its limits, or its default."""
    if typing.get_origin(kind) in (list, tuple, set):
        raise Unplannable(f"{name}: a value given several times")
    limits = marker.metadata  # min_length, max_length, ge, le, pattern…
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[kind, *limits] if limits else kind)
    if default is marker:  # `x: str = Header()`, or the default given beside Annotated[…, Header()]
        default = inspect.Parameter.empty
    if default is inspect.Parameter.empty:
        default = marker.get_default()
    required = default is PydanticUndefined

    async def get(request: Request, solved: dict[Any, Any]) -> Any:
        value = read(request)
        if value is None:
            if required:
                raise NotLean
            return default
        return validated(adapter, value)

    return get


def json_body(model: type[BaseModel]) -> Getter:
    async def get(request: Request, solved: dict[Any, Any]) -> Any:
        if not is_json(request.headers.get("content-type")):
            raise NotLean
        try:
            # orjson accepts a subset of what FastAPI's json.loads does; the rest goes to FastAPI.
            return model.model_validate(orjson.loads(await request.body()))
        except (orjson.JSONDecodeError, ValidationError):
            raise NotLean from None

    return get


class LeanRoute(APIRoute):
    """An APIRoute served by its lean plan when it has one (module docstring)."""

    enabled: ClassVar[bool] = True  # Settings.lean_routes; off: every route is FastAPI's (the A/Bs, the tests)
    lean: bool = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        effective = _effective_route_context_var.get()
        route = effective if effective is not None and effective.original_route is self else self
        self.lean = False  # built again for each router it is included in: the last tells
        if not self.enabled:
            return standard
        try:
            checks, endpoint = lean_plan(route.endpoint, route.dependencies, set(route.param_convertors))
        except Unplannable:
            return standard
        self.lean = True
        overrides = route.dependency_overrides_provider  # the app: tests may replace a dependency there

        async def handle(request: Request) -> Response:
            if getattr(overrides, "dependency_overrides", None):
                return await standard(request)  # FastAPI applies the overrides; the plan knows none
            solved: dict[Any, Any] = {}
            try:
                for check in checks:  # the role checks first: their refusals are FastAPI's too
                    await check(request, solved)
                arguments = {name: await get(request, solved) for name, get in endpoint.arguments}
            except NotLean:
                return await standard(request)
            response: Response = await endpoint.call(**arguments)
            return response

        return handle


def lean_plan(
    endpoint: Callable[..., Any], dependencies: list[params.Depends], path: set[str]
) -> tuple[list[Getter], Plan]:
    """The route's dependencies, then the endpoint's plan; Unplannable when any part is not lean."""
    try:
        returns = typing.get_type_hints(endpoint).get("return")
    except NameError as unresolved:
        raise Unplannable(str(unresolved)) from None
    if not (inspect.isclass(returns) and issubclass(returns, Response)):
        raise Unplannable("the endpoint returns a model: FastAPI serializes it")
    planner = Planner(path)
    checks = [planner.dependency("route dependency", dependency, None) for dependency in dependencies]
    return checks, planner.plan(endpoint)
