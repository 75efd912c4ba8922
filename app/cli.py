"""The `eventline` command line."""

from __future__ import annotations

import asyncio
import logging

import typer
import uvicorn
from rich.console import Console

from app.config import get_settings
from app.eventstore.kafka import admin_client, wait_for_kafka
from app.eventstore.topics import TopicMismatch, create_topics, topic_specs, verify_topics

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


@cli.command()
def api() -> None:
    """Serve the HTTP API only."""
    _configure_logging()
    settings = get_settings()
    uvicorn.run("app.main:create_app", factory=True, host=settings.api_host, port=settings.api_port,
                loop="uvloop", http="httptools", log_level="info")


@cli.command()
def run() -> None:
    """Run everything in one process: the API and the background workers."""
    api()


def main() -> None:
    cli()
