"""Key-encryption keys (KEKs): the data keys are stored wrapped, never in the clear.

Each data subject's data key (app.privacy.sealing) is stored wrapped by a KEK
from the settings, so a copy of the key store alone opens nothing. The setting
lists one or more KEKs, the current one first:

    "k2:<base64 of 32 bytes>,k1:<base64 of 32 bytes>"     (e.g. `openssl rand -base64 32`)

The first key wraps; every listed key unwraps the data keys it wrapped (a
wrapped key names its KEK's id). That is what lets a KEK be rotated without
rewriting a single event, because events are sealed by data keys, not KEKs:

1. put the new key first ("k2:…,k1:…") and restart: new data keys are wrapped by k2;
2. ``rewrap`` every stored data key (unwrap with k1, wrap with k2) and store it back;
3. drop the old key ("k2:…"): a data key still wrapped by k1 now fails loudly
   with ``UnknownKeyEncryptionKey`` instead of being unreadable in silence.

Wrapping is AES-256-GCM under the KEK with a random nonce and the subject id as
associated data, so a wrapped key moved to another subject's row fails to
unwrap. ``WrappedKey.encode()`` is compact JSON (``{"kek": id, "key": base64}``).

``fingerprint()`` names a KEK without revealing it: the first 16 hex digits of
SHA-256 over a fixed label and the key. It is not secret (log it, store it);
a key store records the fingerprint of each KEK id it has used, and a process
whose configured key of the same id has another fingerprint refuses to start
(wrong key pasted in the setting) rather than failing on every unwrap later.

No message here ever contains key material: errors name key ids and entry positions only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEK_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
DATA_KEY_BYTES: Final = 32

_KEK_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_ID_RULE: Final = "a key id is 1 to 32 of A-Z, a-z, 0-9, '_' and '-'"
# A fixed label keeps the fingerprint from being the hash of the bare key (usable elsewhere).
_FINGERPRINT_LABEL: Final = b"eventline/kek-fingerprint/v1\x00"


class UnwrapFailed(Exception):
    """A wrapped data key cannot be unwrapped with the configured KEKs."""

    def __init__(self, kek_id: str, message: str) -> None:
        super().__init__(message)
        self.kek_id = kek_id


class UnknownKeyEncryptionKey(UnwrapFailed):
    def __init__(self, kek_id: str) -> None:
        super().__init__(kek_id, f"no key-encryption key with id {kek_id!r} is configured")


class WrongKeyEncryptionKey(UnwrapFailed):
    def __init__(self, kek_id: str) -> None:
        super().__init__(
            kek_id,
            f"the data key wrapped under {kek_id!r} does not authenticate: the configured key with that id "
            "is not the one that wrapped it, or the wrapped key was altered or belongs to another subject",
        )


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key encrypted under the KEK ``kek_id``: ``blob`` is nonce || ciphertext || tag."""

    kek_id: str
    blob: bytes

    def encode(self) -> bytes:
        data = {"kek": self.kek_id, "key": base64.b64encode(self.blob).decode()}
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> WrappedKey:
        try:
            data = json.loads(raw)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
            raise ValueError("a wrapped key is not valid JSON") from None
        if not isinstance(data, dict) or set(data) != {"kek", "key"}:
            raise ValueError('a wrapped key is a JSON object with exactly "kek" and "key"')
        kek_id, encoded = data["kek"], data["key"]
        if not isinstance(kek_id, str) or not _KEK_ID.fullmatch(kek_id):
            raise ValueError(f"a wrapped key's kek is not a key id: {_ID_RULE}")
        blob = _base64(encoded)
        if blob is None or len(blob) < NONCE_BYTES + TAG_BYTES:
            raise ValueError(f"the wrapped key under {kek_id!r} is not base64 of a nonce, a key and a tag")
        return cls(kek_id=kek_id, blob=blob)


class KeyEncryptionKeys:
    """The configured KEKs: the first wraps, all of them unwrap. Keeps ciphers and fingerprints, not raw keys."""

    __slots__ = ("_ciphers", "_fingerprints")

    def __init__(self, entries: Iterable[tuple[str, bytes]]) -> None:
        self._ciphers: dict[str, AESGCM] = {}
        self._fingerprints: dict[str, str] = {}
        for position, (kek_id, key) in enumerate(entries, start=1):
            _check_entry(position, kek_id, key, seen=self._ciphers.keys())
            self._ciphers[kek_id] = AESGCM(key)
            self._fingerprints[kek_id] = hashlib.sha256(_FINGERPRINT_LABEL + key).hexdigest()[:16]
        if not self._ciphers:
            raise ValueError("no key-encryption keys: at least one is needed")

    @classmethod
    def parse(cls, spec: str) -> KeyEncryptionKeys:
        """``"id:base64key[,id:base64key…]"``, the current key first."""
        if not spec.strip():
            raise ValueError("no key-encryption keys: expected 'id:base64key[,id:base64key...]', current key first")
        return cls(_parse_entry(position, entry) for position, entry in enumerate(spec.split(","), start=1))

    @property
    def current_id(self) -> str:
        return next(iter(self._ciphers))

    @property
    def ids(self) -> tuple[str, ...]:
        """Every configured id, current first."""
        return tuple(self._ciphers)

    def fingerprint(self, kek_id: str | None = None) -> str:
        """A short non-secret name of the KEK ``kek_id`` (the current one by default)."""
        kek_id = self.current_id if kek_id is None else kek_id
        if kek_id not in self._fingerprints:
            raise UnknownKeyEncryptionKey(kek_id)
        return self._fingerprints[kek_id]

    def wrap(self, data_key: bytes, *, subject_id: str) -> WrappedKey:
        if len(data_key) != DATA_KEY_BYTES:
            raise ValueError(f"a data key must be {DATA_KEY_BYTES} bytes, got {len(data_key)}")
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current_id].encrypt(nonce, data_key, _associated_data(subject_id))
        return WrappedKey(kek_id=self.current_id, blob=nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, *, subject_id: str) -> bytes:
        cipher = self._ciphers.get(wrapped.kek_id)
        if cipher is None:
            raise UnknownKeyEncryptionKey(wrapped.kek_id)
        if len(wrapped.blob) < NONCE_BYTES + TAG_BYTES:
            raise WrongKeyEncryptionKey(wrapped.kek_id)
        nonce, sealed = wrapped.blob[:NONCE_BYTES], wrapped.blob[NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, sealed, _associated_data(subject_id))
        except InvalidTag:
            raise WrongKeyEncryptionKey(wrapped.kek_id) from None

    def rewrap(self, wrapped: WrappedKey, *, subject_id: str) -> WrappedKey:
        """``wrapped`` under the current KEK; itself (checked) when it already is, so callers write only changes."""
        data_key = self.unwrap(wrapped, subject_id=subject_id)
        if wrapped.kek_id == self.current_id:
            return wrapped
        return self.wrap(data_key, subject_id=subject_id)

    def __repr__(self) -> str:
        # Settings and tracebacks get printed: ids and fingerprints only.
        return f"KeyEncryptionKeys(ids={self.ids!r}, current_fingerprint={self.fingerprint()!r})"


def _parse_entry(position: int, entry: str) -> tuple[str, bytes]:
    if not entry.strip():
        raise ValueError(f"key-encryption key entry {position} is empty")
    kek_id, colon, encoded = (part.strip() for part in entry.partition(":"))
    if not colon:
        raise ValueError(f"key-encryption key entry {position} has no ':' between its id and its key")
    if not _KEK_ID.fullmatch(kek_id):
        # The bad id is not echoed: a key pasted where the id goes would end up in the logs.
        raise ValueError(f"key-encryption key entry {position}: {_ID_RULE}")
    key = _base64(encoded)
    if key is None:
        raise ValueError(f"key-encryption key {kek_id!r} is not base64")
    return kek_id, key


def _check_entry(position: int, kek_id: str, key: bytes, *, seen: Iterable[str]) -> None:
    if not _KEK_ID.fullmatch(kek_id):
        raise ValueError(f"key-encryption key entry {position}: {_ID_RULE}")
    if kek_id in seen:
        raise ValueError(f"key-encryption key id {kek_id!r} appears more than once")
    if len(key) != KEK_BYTES:
        raise ValueError(f"key-encryption key {kek_id!r} must be {KEK_BYTES} bytes, got {len(key)}")


def _base64(encoded: object) -> bytes | None:
    # validate=True: without it, characters outside the alphabet are skipped instead of refused.
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        return None


def _associated_data(subject_id: str) -> bytes:
    # Labelled with purpose and version: a later format can never be mistaken for this one.
    return json.dumps(["data-key:v1", subject_id], separators=(",", ":")).encode()
