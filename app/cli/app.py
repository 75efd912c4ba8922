"""The root `eventline` command and what its subcommands share."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any

import typer
import uvloop
from rich.console import Console

from app.config import get_settings
from app.observability import logs

cli = typer.Typer(
    help="Eventline: an event-sourced CQRS backend on Kafka and PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()


def configure_logging() -> None:
    settings = get_settings()
    logs.configure(settings.log_level, json_format=settings.log_format == "json")


def run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run a worker under uvloop; SIGTERM and SIGINT cancel it so it can close cleanly."""

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await main

    uvloop.run(guarded())
