"""Request body limit, answered as problem+json.

FastAPI's own `max_body_size` counts the bytes of a streamed body (its 413
goes through our error handlers); this middleware answers a body whose
declared Content-Length is already too large, before anything reads it.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send


class DeclaredBodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = dict(scope.get("headers") or []).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self.refuse(scope, send)
                return
        await self.app(scope, receive, send)

    async def refuse(self, scope: Scope, send: Send) -> None:
        body = orjson.dumps(
            {
                "type": "https://eventline.dev/problems/payload-too-large",
                "title": "Payload too large",
                "status": 413,
                "detail": f"request bodies are limited to {self.max_bytes} bytes",
                "instance": scope.get("path", ""),
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
