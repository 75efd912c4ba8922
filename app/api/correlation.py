"""Every request gets a correlation id (`X-Correlation-ID`, or a new one), carried in logs and commands."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logs import carrying

HEADER = b"x-correlation-id"


class CorrelationMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(HEADER, b"").decode("latin-1")[:100]
        correlation = given if given.isprintable() and given else str(uuid.uuid4())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((HEADER, correlation.encode("latin-1")))
            await send(message)

        with carrying(correlation, None):
            await self.app(scope, receive, send_with_id)
