"""The one place where errors become RFC 9457 problem+json responses.

Routes raise; they never build error bodies themselves. An unexpected error
becomes a 500 problem without internals; an unreachable dependency a fast 503.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.db import OUTAGES, is_outage

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://eventline.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class ProblemDetails(BaseModel):
    """An RFC 9457 problem; some add members (errors, command_id, actual…)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    instance: str | None = None
    detail: str | None = None


# Every error response refers to one schema component (added by `with_problem_component`): a client
# generator then makes one Problem type, instead of refusing forty identical inline copies.
PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}


def problem_doc(description: str) -> dict[str, Any]:
    """OpenAPI `responses` entry of an error: problem+json, as every error here is answered."""
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


def with_problem_component(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the ProblemDetails component the error responses refer to."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["ProblemDetails"] = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    return schema


class Problem(Exception):
    """An HTTP-facing error: status, a type slug, a title and details."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        **extras: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.headers = headers or {}
        self.extras = extras


def not_found(what: str, identifier: object, *, known_yet: bool = False) -> Problem:
    """The one 404: `account 1b2… does not exist` (or, for what may still be coming, `is not known (yet)`)."""
    detail = f"{what} {identifier} is not known (yet)" if known_yet else f"{what} {identifier} does not exist"
    return Problem(404, "not-found", "Not found", detail=detail)


def problem_response(request: Request, problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "instance": request.url.path,
    }
    if problem.detail:
        body["detail"] = problem.detail
    body.update(problem.extras)
    return Response(
        orjson.dumps(body, default=str),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


async def _on_problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, Problem)
    return problem_response(request, error)


async def _on_validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in error.errors()
    ]
    return problem_response(
        request,
        Problem(
            422,
            "validation-error",
            "Request is not valid",
            detail="; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors),
            errors=errors,
        ),
    )


async def _on_http(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(error.status_code, "http-error")
    return problem_response(
        request,
        Problem(
            error.status_code,
            slug,
            str(error.detail),
            headers=dict(error.headers or {}),
        ),
    )


async def _on_database_error(request: Request, error: Exception) -> Response:
    # An unreachable or restarting database is an outage, not a bug: say so, quickly, and retryably.
    if not is_outage(error):
        return await _on_unexpected(request, error)
    log.warning("database unavailable on %s %s: %r", request.method, request.url.path, error)
    return problem_response(
        request,
        Problem(
            503,
            "database-unavailable",
            "The read models are unavailable",
            detail="PostgreSQL did not answer; retry shortly",
            headers={"Retry-After": "1"},
        ),
    )


async def _on_pool_exhausted(request: Request, error: Exception) -> Response:
    # Every pooled connection stayed busy for the pool's timeout: overload, not a bug.
    log.warning("no database connection free on %s %s: %r", request.method, request.url.path, error)
    return problem_response(
        request,
        Problem(
            503,
            "read-models-busy",
            "The read models are busy",
            detail="no database connection became free in time; retry shortly",
            headers={"Retry-After": "1"},
        ),
    )


async def _on_unexpected(request: Request, error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, Problem(500, "internal-error", "Internal server error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    outages: tuple[type[Exception], ...] = (DBAPIError, *OUTAGES)
    for outage in outages:
        app.add_exception_handler(outage, _on_database_error)
    app.add_exception_handler(PoolTimeout, _on_pool_exhausted)
    app.add_exception_handler(Exception, _on_unexpected)


# Business refusals from the processor, by code, when they are not a plain 422.
REJECTION_STATUS = {"not-found": 404, "version-mismatch": 412, "subject-forgotten": 410}


def problem_for_rejection(error: dict[str, Any], **context: Any) -> Problem:
    """Turn a processor's rejection (code, title, detail, extras) into a problem."""
    fields = dict(error)
    code = str(fields.pop("code", "rejected"))
    title = str(fields.pop("title", "Command rejected"))
    detail = fields.pop("detail", None)
    # A fact named like a member of every problem (a remembered rejection from before the domain
    # called it `message_status`, say) must neither break the answer nor replace the HTTP status.
    for reserved in RESERVED_MEMBERS & fields.keys():
        fields[f"rejected_{reserved}"] = fields.pop(reserved)
    return Problem(REJECTION_STATUS.get(code, 422), code, title, detail=detail, **fields, **context)


RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "headers", "slug"})
