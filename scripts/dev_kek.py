#!/usr/bin/env python3
"""The development key-encryption key of `make run`: created once under .local/, never printed in full.

Prints the value for EVENTLINE_PRIVACY_KEKS (`dev:<base64 of 32 bytes>`) on
stdout, for the Makefile to pass on. The key wraps the data keys that seal
personal fields (docs/privacy.md); losing it loses every personal field, so a
real deployment keeps its KEK in a secret store, not in a file like this one.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

KEY_FILE = Path(__file__).resolve().parent.parent / ".local" / "dev-kek"


def main() -> int:
    if not KEY_FILE.exists():
        KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        KEY_FILE.write_text(f"dev:{base64.b64encode(os.urandom(32)).decode()}\n")
        KEY_FILE.chmod(0o600)
        print(f"[dev kek] created a development key-encryption key in {KEY_FILE}", file=sys.stderr)
    print(KEY_FILE.read_text().strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
