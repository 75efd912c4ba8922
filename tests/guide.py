"""docs/adding-an-aggregate.md as data: the patch it teaches, and the size it claims for it."""

from __future__ import annotations

import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "adding-an-aggregate.md"


def guide_patch() -> str:
    [patch] = re.findall(r"```diff\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return str(patch)


def stated_size() -> tuple[int, int] | None:
    """(files, added lines) as the guide states them."""
    stated = re.search(r"needs (\d+) files, (\d+) added lines", GUIDE.read_text())
    return None if stated is None else (int(stated[1]), int(stated[2]))


def patch_size(patch: str) -> tuple[int, int]:
    lines = patch.splitlines()
    files = sum(line.startswith("diff --git ") for line in lines)
    added = sum(line.startswith("+") and not line.startswith("+++") for line in lines)
    return files, added
