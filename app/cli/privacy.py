"""`eventline forget <subject>`: forget a data subject from the command line (docs/privacy.md).

The same command as `DELETE /subjects/{id}`, sent straight to the commands topic
by an operator who runs this on a machine with the deployment's settings; the
audit records the principal `cli` and `requested_by: operator`. A forgotten
subject stays forgotten: running it again succeeds and changes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.app import cli, configure_logging, console
from app.config import Settings, get_settings

if TYPE_CHECKING:
    from app.eventstore.envelope import CommandResult

CLI_PRINCIPAL = "cli"


@cli.command()
def forget(
    subject_id: Annotated[str, typer.Argument(help="The id of an account or a conversation.")],
) -> None:
    """Forget a data subject: their personal values read as [erased] everywhere, for good."""
    configure_logging()
    try:
        uuid.UUID(subject_id)
    except ValueError:
        console.print(f"[red]{subject_id!r} is not an account or conversation id (a uuid)[/red]")
        raise typer.Exit(2) from None
    result = asyncio.run(_forget(get_settings(), subject_id))
    if result is None:
        raise typer.Exit(1)
    if result.outcome != "succeeded":
        console.print(f"[red]refused: {(result.error or {}).get('detail', result.error)}[/red]")
        raise typer.Exit(1)
    console.print(f"forgotten: {subject_id} (version {result.version}, command {result.command_id})")


async def _forget(settings: Settings, subject_id: str) -> CommandResult | None:
    # Imported here, not at the top: every `eventline` command loads this module (app/cli/services.py).
    from app.db import create_engine
    from app.domain.forgetting import ForgetSubject
    from app.eventstore.command_bus import CommandBus, new_producer
    from app.eventstore.envelope import new_command
    from projections import queries

    engine = create_engine(settings)
    try:
        async with engine.connect() as db:
            kind = await queries.subject_kind(db, subject_id)
    finally:
        await engine.dispose()
    if kind is None:
        console.print(f"[red]no account or conversation {subject_id} in the read models[/red]")
        return None
    producer = new_producer(settings)
    await producer.start()
    bus = CommandBus(settings, producer)  # ForgetSubject holds nothing personal: no key store needed
    await bus.start()
    try:
        command = new_command(
            ForgetSubject(requested_by="operator"), subject_id, principal=CLI_PRINCIPAL, aggregate_type=kind
        )
        result = await bus.send(command, wait=True)
        if result is None:
            console.print(f"[yellow]sent, not decided yet: see command {command.command_id}[/yellow]")
        return result
    finally:
        await bus.stop()
        await producer.stop()
