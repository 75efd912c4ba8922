"""The `eventline` command line: services, topics and read-side operations."""

from __future__ import annotations

from app.cli import readside, services, topics
from app.cli.app import cli


def main() -> None:
    cli()


__all__ = ["cli", "main", "readside", "services", "topics"]
