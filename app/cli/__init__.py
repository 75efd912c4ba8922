"""The `eventline` command line: services, topics, read-side operations and forgetting."""

from __future__ import annotations

from app.cli import privacy, readside, services, topics
from app.cli.app import cli


def main() -> None:
    cli()


__all__ = ["cli", "main", "privacy", "readside", "services", "topics"]
