"""`eventline topics …`: the Kafka topics of the event store."""

from __future__ import annotations

import asyncio

import typer

from app.cli.app import cli, console
from app.config import get_settings
from app.eventstore.kafka import admin_client, wait_for_kafka
from app.eventstore.topics import TopicMismatch, create_topics, topic_specs, verify_topics

topics_cli = typer.Typer(help="Manage the Kafka topics of the event store.", no_args_is_help=True)
cli.add_typer(topics_cli, name="topics")


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
