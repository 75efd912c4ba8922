"""Seal and open personal values with a data subject's key (AES-256-GCM, from `cryptography`).

A sealed value is an ASCII token that fits any JSON string field:

    "sealed:v1:" + base64url-without-padding(nonce (12 bytes) || ciphertext || tag (16 bytes))

- One 32-byte data key per data subject (``new_data_key``); forgetting the
  subject deletes the key, after which every token sealed under it is noise.
- A fresh random 96-bit nonce per seal, so equal texts give different tokens
  (a sealed field reveals neither equality nor, beyond its length, content).
  Random nonces are safe for far more seals than one subject will ever have.
- The associated data binds the subject id and the field name (with the format
  version), so a token copied into another subject's event or into another
  field fails to open instead of showing the wrong person's data.
- ``open_sealed`` returns the plaintext, ``ERASED`` when the key is gone
  (``key=None``: a forgotten subject), or raises ``SealBroken``: it never
  returns garbage from a malformed or altered token.

Events travel as JSON dicts, so ``seal_fields`` and ``open_fields`` work on
dicts, return new ones, and take the names to touch (for example the keys of
``app.domain.personal.personal_fields(Model)`` whose subject is this one):

    stored = seal_fields(event_data, ["owner", "holder"], subject_id=account_id, key=data_key)
    shown = open_fields(stored, ["owner", "holder"], subject_id=account_id, key=data_key_or_none)

None stays None and a missing field stays missing. Values written before
sealing existed are plain: they pass through ``open_fields`` unchanged, except
that a forgotten subject's plain values become ``ERASED`` too.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Final, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX: Final = "sealed:v1:"
ERASED: Final = "[erased]"

KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12  # the 96-bit nonce GCM is specified for
TAG_BYTES: Final = 16

_TOKEN_BODY: Final = re.compile(r"[A-Za-z0-9_-]+")


class SealBroken(ValueError):
    """A token is malformed or fails authentication: altered, moved, or sealed under another key."""


def new_data_key() -> bytes:
    """A fresh random data key for one data subject."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(plaintext: str, *, subject_id: str, field: str, key: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = _cipher(key).encrypt(nonce, plaintext.encode(), _associated_data(subject_id, field))
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")


def is_sealed(value: object) -> TypeGuard[str]:
    """Whether ``value`` has the token's form; only ``open_sealed`` proves it is genuine."""
    return isinstance(value, str) and value.startswith(PREFIX)


def open_sealed(token: str, *, subject_id: str, field: str, key: bytes | None) -> str:
    """The plaintext; ``ERASED`` when the subject is forgotten (``key=None``); else ``SealBroken``."""
    if key is None:
        # Nothing can be checked without the key, and nothing may be shown: erased either way.
        return ERASED
    raw = _token_bytes(token, field)
    nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    try:
        plaintext = _cipher(key).decrypt(nonce, sealed, _associated_data(subject_id, field))
    except InvalidTag:
        raise SealBroken(
            f"sealed {field!r} does not authenticate: altered, moved from another subject or field, "
            "or sealed under another key"
        ) from None
    return plaintext.decode()


def seal_fields(
    payload: Mapping[str, object], fields: Iterable[str], *, subject_id: str, key: bytes
) -> dict[str, object]:
    """A copy of ``payload`` with each named text field sealed for ``subject_id``."""
    sealed = dict(payload)
    for name in _names(fields):
        value = payload.get(name)
        if value is None or _opens(value, subject_id=subject_id, field=name, key=key):
            continue
        if not isinstance(value, str):
            raise TypeError(f"personal field {name!r} holds {type(value).__name__}; only text can be sealed")
        sealed[name] = seal(value, subject_id=subject_id, field=name, key=key)
    return sealed


def open_fields(
    payload: Mapping[str, object], fields: Iterable[str], *, subject_id: str, key: bytes | None
) -> dict[str, object]:
    """A copy of ``payload`` with each named field opened (or ``ERASED`` when ``key`` is None)."""
    opened = dict(payload)
    for name in _names(fields):
        value = payload.get(name)
        if value is None:
            continue
        if key is None:
            # A forgotten subject's data is gone, including plain values written before sealing existed.
            opened[name] = ERASED
        elif is_sealed(value):
            opened[name] = open_sealed(value, subject_id=subject_id, field=name, key=key)
    return opened


def _opens(value: object, *, subject_id: str, field: str, key: bytes) -> bool:
    # "Already sealed" means a genuine token for this subject and field, not just the prefix: a person
    # can write text that starts with "sealed:v1:", and that text must be sealed like any other.
    if not is_sealed(value):
        return False
    try:
        open_sealed(value, subject_id=subject_id, field=field, key=key)
    except SealBroken:
        return False
    return True


def _names(fields: Iterable[str]) -> tuple[str, ...]:
    # A lone string is an iterable of one-letter names: a mistake that would silently seal nothing.
    if isinstance(fields, str):
        raise TypeError("fields must be a collection of field names, not one string")
    return tuple(fields)


def _cipher(key: bytes) -> AESGCM:
    # AESGCM also takes 128/192-bit keys; a short key here is a bug, not a choice.
    if len(key) != KEY_BYTES:
        raise ValueError(f"a data key must be {KEY_BYTES} bytes, got {len(key)}")
    return AESGCM(key)


@functools.lru_cache(maxsize=65536)  # ids and field names only, nothing secret; json.dumps showed in profiles
def _associated_data(subject_id: str, field: str) -> bytes:
    # A JSON array is unambiguous: ("a:b", "c") and ("a", "b:c") give different bytes.
    return json.dumps(["sealed:v1", subject_id, field], separators=(",", ":")).encode()


def _token_bytes(token: str, field: str) -> bytes:
    body = token.removeprefix(PREFIX)
    # Checked before decoding: the base64 decoder would skip characters outside its alphabet.
    if body == token or not _TOKEN_BODY.fullmatch(body):
        raise SealBroken(f"{field!r} is not a sealed token")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except binascii.Error:
        raise SealBroken(f"sealed {field!r} is not valid base64url") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SealBroken(f"sealed {field!r} is too short to hold a nonce and a tag")
    return raw
