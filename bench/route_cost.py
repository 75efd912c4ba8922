"""What a request costs the API process itself: CPU per deposit or read, in-process, without uvicorn.

    python -m bench.route_cost [N] [lean,fastapi,lean,fastapi]
    python -m bench.route_cost [N] read
    python -m bench.route_cost [N] read-lean,read-fastapi,read-lean,read-fastapi
                                         (needs the local Kafka and PostgreSQL: `make infra`)

The app is called as ASGI directly by 64 concurrent callers with `Prefer:
respond-async`, so no processor is needed and the figure is the API's own work:
middleware, routing, FastAPI's parameter solving, the route, and producing the
command. The second argument A/Bs the command routes' lean path (app/api/lean_routes.py)
against FastAPI's own handler, an app of each in turn in this process. To A/B another
change of the API, run it from a checkout of each version, alternating:
`cd <checkout> && PYTHONPATH=. <venv>/bin/python -m bench.route_cost`.
`read` measures `GET /accounts/{id}` instead, on a row written into the read model
beforehand: the pool's checkout, the query, and the answer; `read-lean` is the same,
`read-fastapi` the same read with every route FastAPI's own.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from app.db import create_engine
from app.main import create_app
from bench.setup import bench_settings, delete_namespace_topics, drop_database
from projections.tables import accounts

CALLERS = 64


def deposit_scope(account: str, body: bytes) -> dict[str, Any]:
    path = f"/accounts/{account}/deposits"
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"prefer", b"respond-async")]
    return scope_of("POST", path, [*headers, (b"content-length", str(len(body)).encode())])


def scope_of(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": headers,
        "state": {},
    }


async def call(app: Any, scope: dict[str, Any], body: bytes) -> int:
    """One request through the whole ASGI app; its status."""
    given = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:
            await asyncio.Event().wait()  # the client never disconnects
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(scope), receive, send)
    return status


async def main(requests: int, variants: list[str]) -> None:
    os.environ.setdefault("EVENTLINE_ALLOW_ANONYMOUS", "true")
    settings = await bench_settings()
    try:
        for variant in variants:
            lean = settings.model_copy(update={"lean_routes": variant in ("lean", "read", "read-lean")})
            if variant.startswith("read"):
                await measure_read(lean, requests, variant)
                continue
            await measure(create_app(lean), requests, variant)
    finally:
        await delete_namespace_topics(settings)
        await drop_database(settings)


async def measure_read(settings: Any, requests: int, label: str) -> None:
    account = str(uuid.uuid4())
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                accounts.insert().values(
                    account_id=account,
                    owner="bench",
                    currency="EUR",
                    balance=0,
                    version=1,
                    created_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                )
            )
    finally:
        await engine.dispose()
    scope = scope_of("GET", f"/accounts/{account}", [(b"host", b"bench")])
    # Sixteen callers: the pool has twenty connections, and more callers than that measure queueing.
    await measure(create_app(settings), requests, label, scope, b"", 200, callers=16)


async def measure(
    app: Any,
    requests: int,
    label: str,
    scope: dict[str, Any] | None = None,
    body: bytes = orjson.dumps({"amount": 1}),
    expect: int = 202,
    callers: int = CALLERS,
) -> None:
    scope = scope or deposit_scope(str(uuid.uuid4()), body)
    async with app.router.lifespan_context(app):

        async def caller(count: int) -> None:
            for _ in range(count):
                if (status := await call(app, scope, body)) != expect:
                    raise RuntimeError(f"a {scope['method']} {scope['path']} answered {status}")

        await asyncio.gather(*(caller(10) for _ in range(callers)))  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(caller(requests // callers) for _ in range(callers)))
        done = requests // callers * callers
        print(
            f"{label}: {(time.process_time() - cpu) / done * 1e6:.0f} µs of CPU per request in-process "
            f"({done:,} requests, {callers} callers, {done / (time.perf_counter() - wall):,.0f}/s)",
            flush=True,
        )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 6400
    asyncio.run(main(count, (sys.argv[2] if len(sys.argv) > 2 else "lean").split(",")))
