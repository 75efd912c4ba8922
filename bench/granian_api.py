"""`eventline api` served by granian instead of uvicorn, for the server A/B (bench/server.py).

Granian stays out of the product: it lost the A/B (docs/write-path.md, "The HTTP
server"). Like `eventline api` it runs the app in this one process on uvloop,
with its lifespan and an access log line per request.
"""

from __future__ import annotations

import asyncio
import signal

import uvloop
from granian.constants import Interfaces, TaskImpl
from granian.server.embed import Server

from app.cli.app import configure_logging
from app.config import get_settings
from app.main import create_app


async def serve(task_impl: TaskImpl) -> None:
    settings = get_settings()
    server = Server(
        create_app(settings, workers={}),
        address=settings.api_host,
        port=settings.api_port,
        interface=Interfaces.ASGI,
        task_impl=task_impl,
        log_access=True,
    )
    configure_logging()  # granian configured its own handlers on construction; Eventline's take over
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    await server.serve()


if __name__ == "__main__":
    import sys

    uvloop.run(serve(TaskImpl(sys.argv[1] if len(sys.argv) > 1 else "asyncio")))
