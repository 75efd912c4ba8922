"""`eventline migrate | projections | failures | rebuild`: operating the read side."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.app import cli, configure_logging, console
from app.config import Settings, get_settings
from app.process_tuning import tune_garbage_collector

# The read side's modules (SQLAlchemy, the projections) are imported inside each command, not here:
# every `eventline` command loads this module, `eventline processor` among them (app/cli/services.py).

ROOT = Path(__file__).resolve().parents[2]


@cli.command()
def migrate() -> None:
    """Apply the database migrations (alembic upgrade head)."""
    from alembic import command
    from alembic.config import Config

    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")


@cli.command()
def projections() -> None:
    """Show every projection: state, lag per partition, open failures, last rebuild."""
    settings = get_settings()
    views = asyncio.run(_status(settings))
    table = Table(title="Projections")
    for column in ("projection", "state", "lag", "failures", "partitions (next offset / end)", "last rebuild"):
        table.add_column(column)
    for view in views:
        state = "[green]running[/green]" if view["state"] == "running" else f"[red]{view['state']}[/red]"
        lag = "?" if view["lag"] is None else str(view["lag"])
        lag = f"[green]{lag}[/green]" if view["lag"] == 0 else f"[yellow]{lag}[/yellow]"
        partitions = " ".join(
            f"{p['topic'][0]}{p['partition']}:{p['next_offset']}/{p['end_offset']}" for p in view["partitions"]
        )
        rebuild_state = (view["rebuild"] or {}).get("state", "-")
        failed = str(view["failures"]) if not view["failures"] else f"[red]{view['failures']}[/red]"
        table.add_row(view["name"], state, lag, failed, partitions or "-", rebuild_state)
    console.print(table)


async def _status(settings: Settings) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer

    from app.db import create_engine
    from app.eventstore.kafka import connection
    from projections.status import projection_status

    engine = create_engine(settings)
    consumer = AIOKafkaConsumer(**connection(settings), isolation_level="read_committed")
    await consumer.start()
    try:
        return await projection_status(settings, engine, consumer)
    finally:
        await consumer.stop()
        await engine.dispose()


failures_cli = typer.Typer(help="Events that projections could not apply.", invoke_without_command=True)
cli.add_typer(failures_cli, name="failures")


@failures_cli.callback()
def failures_list(
    ctx: typer.Context, projection: Annotated[str | None, typer.Option(help="Only this projection.")] = None
) -> None:
    """List open failures (then `eventline failures retry ID` once the cause is fixed)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = asyncio.run(_failures(get_settings(), projection))
    table = Table(title="Open projection failures")
    for column in ("id", "projection", "where", "event", "error", "at"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.failure_id),
            row.projection,
            f"{row.topic}[{row.partition}]@{row.offset}",
            f"{row.event_type} {row.event_id}",
            f"[red]{row.error}[/red]",
            str(row.created_at),
        )
    console.print(table if rows else "[green]No open failures.[/green]")


async def _failures(settings: Settings, projection: str | None) -> list[Any]:
    from app.db import create_engine
    from projections import failures

    engine = create_engine(settings)
    try:
        return list(await failures.open_failures(engine, projection))
    finally:
        await engine.dispose()


@failures_cli.command("retry")
def failures_retry(failure_ids: Annotated[list[int], typer.Argument(help="Failure ids to retry.")]) -> None:
    """Apply failed events again; a halted projection resumes from its checkpoint."""
    from app.db import create_engine
    from projections import failures
    from projections.registry import PROJECTIONS

    settings = get_settings()

    async def retry_all() -> None:
        engine = create_engine(settings)
        try:
            rows = {row.failure_id: row for row in await failures.open_failures(engine)}
            for failure_id in failure_ids:
                if failure_id not in rows:
                    console.print(f"{failure_id}: [yellow]not an open failure[/yellow]")
                    continue
                outcome = await failures.retry(engine, PROJECTIONS[rows[failure_id].projection], failure_id)
                console.print(f"{failure_id}: [green]{outcome}[/green]")
        finally:
            await engine.dispose()

    asyncio.run(retry_all())


@cli.command("rebuild")
def rebuild_command(
    names: Annotated[list[str] | None, typer.Argument(help="Projections to rebuild.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Rebuild every projection.")] = False,
    verify: Annotated[bool, typer.Option(help="Compare with the live tables; refuse to swap if they differ.")] = False,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes sharing the replay by partition (default: one per CPU core).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="RFC 3339 time with its offset: build the read model as it was then (with --into)."
        ),
    ] = None,
    into: Annotated[
        str | None, typer.Option(help="With --as-of: the schema to build it in; the live tables are not touched.")
    ] = None,
) -> None:
    """Replay the events into fresh tables while the live ones keep serving, then swap them in.

    With --as-of and --into, build the read model as it was at a past moment in a schema of its own, for
    audit: only the events that occurred by then are applied, and nothing is compared or swapped."""
    from projections.rebuild import default_workers
    from projections.registry import PROJECTIONS

    configure_logging()
    chosen = list(PROJECTIONS) if all_ else (names or [])
    unknown = [name for name in chosen if name not in PROJECTIONS]
    if not chosen or unknown:
        console.print(f"[red]Name projections to rebuild (or --all); known: {', '.join(PROJECTIONS)}[/red]")
        raise typer.Exit(2)
    settings = get_settings()
    tune_garbage_collector(settings.gc_young_threshold)  # a replay holds a batch of 20,000 events in flight
    if as_of is not None or into is not None:
        raise typer.Exit(_rebuild_as_of(settings, chosen, as_of, into, verify))
    workers = workers or default_workers(settings)
    refused = asyncio.run(_rebuild(settings, chosen, verify, workers))
    raise typer.Exit(1 if refused else 0)


def _rebuild_as_of(settings: Settings, names: list[str], as_of: str | None, into: str | None, verify: bool) -> int:
    from app.db import create_engine
    from projections.rebuild import AsOfRefused, rebuild_as_of
    from projections.registry import PROJECTIONS

    if as_of is None or into is None or verify:
        console.print("[red]--as-of and --into go together, and without --verify (nothing is swapped)[/red]")
        return 2
    try:
        moment = datetime.fromisoformat(as_of)
    except ValueError:
        console.print(f"[red]--as-of {as_of!r} is not an RFC 3339 time[/red]")
        return 2

    async def build() -> dict[str, int]:
        engine = create_engine(settings)
        try:
            return await rebuild_as_of(settings, engine, [PROJECTIONS[name] for name in names], moment, into)
        finally:
            await engine.dispose()

    try:
        applied = asyncio.run(build())
    except AsOfRefused as refused:
        console.print(f"[red]{refused}[/red]")
        return 2
    for name, events in applied.items():
        console.print(f"{name}: {events:,} events up to {moment.isoformat()} applied into {into}")
    return 0


async def _rebuild(settings: Settings, names: list[str], verify: bool, workers: int) -> bool:
    """One replay for all the named projections; each is compared and swapped on its own."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from app.db import create_engine
    from projections.rebuild import rebuild_together, summary
    from projections.registry import PROJECTIONS

    engine = create_engine(settings)
    try:
        with Progress(
            TextColumn(f"[bold]{', '.join(names)}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>10} events/s"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("rebuild", total=None, rate="-")
            started = asyncio.get_running_loop().time()

            def show(done: int, total: int) -> None:
                elapsed = max(asyncio.get_running_loop().time() - started, 1e-6)
                bar.update(task, completed=done, total=total, rate=f"{done / elapsed:,.0f}")

            reports = await rebuild_together(
                settings, engine, [PROJECTIONS[name] for name in names], verify=verify, progress=show, workers=workers
            )
        for report in reports:
            console.print(summary(report))
    finally:
        await engine.dispose()
    return not all(report.swapped for report in reports)
