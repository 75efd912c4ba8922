"""`eventline run | api | processor | projector | saga`: the long-running processes.

Each command imports what it runs when it runs: `eventline processor` never loads
FastAPI, uvicorn or SQLAlchemy, which would add most of a second to every start
(docs/write-path.md, "How soon a processor decides").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from app.cli.app import cli, configure_logging, run_until_signalled
from app.config import get_settings
from app.process_tuning import tune_garbage_collector

if TYPE_CHECKING:
    from app.main import Worker


def _serve(workers: dict[str, Worker], service: str) -> None:
    import uvicorn

    from app.api.security import OpenAccessRefused
    from app.main import create_app
    from app.observability.tracing import setup_tracing, shutdown_tracing

    configure_logging()
    settings = get_settings()
    tune_garbage_collector(settings.gc_young_threshold)
    setup_tracing(settings, service)
    try:
        app = create_app(settings, workers=workers)
    except OpenAccessRefused as refused:
        typer.echo(f"eventline: {refused}", err=True)
        raise SystemExit(2) from None
    # log_config=None: uvicorn's own lines and its access log go through our handlers (JSON by default).
    try:
        uvicorn.run(
            app, host=settings.api_host, port=settings.api_port, loop="uvloop", http="httptools", log_config=None
        )
    finally:
        shutdown_tracing()


@cli.command()
def run() -> None:
    """Run everything in one process: the API, the command processor, the projector and the saga."""
    from app.eventstore.processor import run_processor
    from app.sagas.payment import run_saga
    from projections.projector import run_projector

    _serve({"processor": run_processor, "projector": run_projector, "saga": run_saga}, "eventline")


@cli.command()
def api() -> None:
    """Serve the HTTP API only (scale it out freely)."""
    _serve({}, "api")


def _run_worker(worker: Worker, service: str) -> None:
    """Run one background worker as this process, once the topics check out."""
    from app.eventstore.topics import check_topics
    from app.observability.tracing import setup_tracing, shutdown_tracing

    configure_logging()
    settings = get_settings()
    tune_garbage_collector(settings.gc_young_threshold)
    setup_tracing(settings, service)

    async def main() -> None:
        await check_topics(settings)
        await worker(settings)

    try:
        run_until_signalled(main())
    finally:
        shutdown_tracing()


@cli.command()
def processor() -> None:
    """Run a command processor: it joins the group and owns some partitions of the event store."""
    from app.eventstore.processor import run_processor

    _run_worker(run_processor, "processor")


@cli.command()
def projector() -> None:
    """Run the projectors: they build the PostgreSQL read models from the events."""
    from projections.projector import run_projector

    _run_worker(run_projector, "projector")


@cli.command()
def saga() -> None:
    """Run the payment saga: charge for submitted messages, then deliver or reject them."""
    from app.sagas.payment import run_saga

    _run_worker(run_saga, "saga")
