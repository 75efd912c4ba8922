"""The `eventline` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any

import typer
import uvicorn
import uvloop
from rich.console import Console

from app.config import get_settings
from app.eventstore.kafka import admin_client, wait_for_kafka
from app.eventstore.processor import run_processor
from app.eventstore.topics import TopicMismatch, create_topics, topic_specs, verify_topics
from app.main import Worker, check_topics, create_app
from projections.projector import run_projector

cli = typer.Typer(help="Eventline: an event-sourced CQRS backend on Kafka and PostgreSQL.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
topics_cli = typer.Typer(help="Manage the Kafka topics of the event store.", no_args_is_help=True)
cli.add_typer(topics_cli, name="topics")
console = Console()


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


@topics_cli.command("create")
def topics_create() -> None:
    """Create the missing topics with their configs, then verify all of them."""
    settings = get_settings()

    async def create() -> list[str]:
        await wait_for_kafka(settings)
        admin = admin_client(settings)
        await admin.start()
        try:
            created = await create_topics(admin, settings)
            await verify_topics(admin, settings)
            return created
        finally:
            await admin.close()

    try:
        created = asyncio.run(create())
    except TopicMismatch as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    for spec in topic_specs(settings):
        mark = "[green]created[/green]" if spec.name in created else "exists"
        console.print(f"  {spec.name:40} {spec.partitions:>4} partitions  {mark}")


def _serve(workers: dict[str, Worker]) -> None:
    _configure_logging()
    settings = get_settings()
    app = create_app(settings, workers=workers)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, loop="uvloop", http="httptools",
                log_level="info")


@cli.command()
def api() -> None:
    """Serve the HTTP API only (scale it out freely)."""
    _serve({})


@cli.command()
def run() -> None:
    """Run everything in one process: the API, the command processor and the other workers."""
    _serve({"processor": run_processor, "projector": run_projector})


@cli.command()
def processor() -> None:
    """Run a command processor: it joins the group and owns some partitions of the event store."""
    _configure_logging()
    settings = get_settings()

    async def main() -> None:
        await check_topics(settings)
        await run_processor(settings)

    _run_until_signalled(main())


@cli.command()
def projector() -> None:
    """Run the projectors: they build the PostgreSQL read models from the events."""
    _configure_logging()
    settings = get_settings()

    async def main() -> None:
        await check_topics(settings)
        await run_projector(settings)

    _run_until_signalled(main())


def _run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
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


def main() -> None:
    cli()
