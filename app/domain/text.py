"""Rules for text people write: owners, references, titles, message bodies.

They belong to the domain, not to the HTTP edge: a command built anywhere (the
API, the CLI, a saga, a test) is held to them, because its text ends up in
events that logs, projections and clients must all be able to carry.
"""

from __future__ import annotations

import unicodedata


def is_unprintable(char: str, allowed: str = "") -> bool:
    # Cc: control characters break logs, CSV exports and terminals (and NUL cannot be
    # stored in a PostgreSQL text column). Cs: lone surrogates cannot be encoded as UTF-8.
    return char not in allowed and unicodedata.category(char) in ("Cc", "Cs")


def no_control_characters(text: str) -> str:
    if any(is_unprintable(char) for char in text):
        raise ValueError("must not contain control characters")
    return text


def printable(text: str) -> str:
    # The same rule as no_control_characters; references have always been refused with
    # this wording and clients see it in 422 responses, so it is kept.
    if any(is_unprintable(char) for char in text):
        raise ValueError("must not contain control characters or lone surrogates")
    return text


def visible(text: str) -> str:
    # Only whitespace and invisible format characters (RTL marks, zero-width spaces…) is blank too.
    if all(char.isspace() or unicodedata.category(char) == "Cf" for char in text):
        raise ValueError("must not be blank")
    return text
