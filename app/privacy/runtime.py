"""Personal-data protection in a running process: its key store, when key-encryption keys are set.

With `EVENTLINE_PRIVACY_KEKS` set, every process that writes or reads personal
fields starts a key store (app.privacy.key_store) and refuses to start when the
keys cannot open what is stored. Without it nothing is sealed: allowed in
development and tests only (app.config refuses it in production).
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from app.config import Settings
from app.privacy.key_encryption import KeyEncryptionKeys
from app.privacy.key_store import KeyEncryptionKeyMismatch, KeyStore


def key_encryption_keys(settings: Settings) -> KeyEncryptionKeys | None:
    if not settings.privacy_keks:
        return None
    try:
        return KeyEncryptionKeys.parse(settings.privacy_keks)
    except ValueError as error:  # the message names entries and ids, never key material
        raise KeyEncryptionKeyMismatch(f"EVENTLINE_PRIVACY_KEKS: {error}; nothing was written") from None


async def start_key_store(
    settings: Settings, producer: AIOKafkaProducer | None, *, pseudonyms: bool = False
) -> KeyStore | None:
    """The process's key store, started (the whole topic read, the KEKs checked), or None when off.
    `pseudonyms`: an API process, which names end users by pseudonym (KeyStore.pseudonym)."""
    keks = key_encryption_keys(settings)
    if keks is None:
        return None
    store = KeyStore(settings, keks, producer)
    await store.start(pseudonyms=pseudonyms)
    return store
