#!/usr/bin/env python3
"""The development API key of `make run`: created once under .local/, printed once.

Prints the value for EVENTLINE_API_KEYS (name:role:sha256) on stdout; the key
itself goes to stderr the first time only, and stays in .local/dev-api-key.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from pathlib import Path

KEY_FILE = Path(__file__).resolve().parent.parent / ".local" / "dev-api-key"


def main() -> int:
    if KEY_FILE.exists():
        key = KEY_FILE.read_text().strip()
        print(f"[dev key] using the development API key in {KEY_FILE}", file=sys.stderr)
    else:
        key = "el_dev_" + secrets.token_urlsafe(24)
        KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        KEY_FILE.write_text(key + "\n")
        KEY_FILE.chmod(0o600)
        print(
            f"[dev key] created a development API key (admin role): {key}\n"
            f"[dev key] send it as 'Authorization: Bearer <key>'; it is kept in {KEY_FILE}",
            file=sys.stderr,
        )
    print(f"dev:admin:{hashlib.sha256(key.encode()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
