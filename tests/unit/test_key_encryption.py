"""Data keys are wrapped by the current KEK, unwrap under any listed KEK, and survive a KEK rotation."""

from __future__ import annotations

import base64
import os
import re

import pytest

from app.privacy.key_encryption import (
    KeyEncryptionKeys,
    UnknownKeyEncryptionKey,
    WrappedKey,
    WrongKeyEncryptionKey,
)
from app.privacy.sealing import new_data_key

K1, K2, IMPOSTOR = os.urandom(32), os.urandom(32), os.urandom(32)
DATA_KEY = new_data_key()


def entry(kek_id: str, key: bytes) -> str:
    return f"{kek_id}:{base64.b64encode(key).decode()}"


def material(*keys: bytes) -> list[str]:
    """Every way a key could show up in a message: base64, urlsafe base64, hex, and a piece of each."""
    forms = [base64.b64encode(k).decode() for k in keys] + [base64.urlsafe_b64encode(k).decode() for k in keys]
    forms += [k.hex() for k in keys]
    return forms + [form[:12] for form in forms]


def test_the_first_key_is_current_and_all_are_listed_in_order() -> None:
    keks = KeyEncryptionKeys.parse(f"{entry('k2', K2)}, {entry('k1', K1)}")

    assert keks.current_id == "k2"
    assert keks.ids == ("k2", "k1")


def test_a_data_key_unwraps_to_itself_for_its_subject() -> None:
    keks = KeyEncryptionKeys.parse(entry("k1", K1))

    wrapped = keks.wrap(DATA_KEY, subject_id="acc-1")

    assert wrapped.kek_id == "k1"
    assert DATA_KEY not in wrapped.blob
    assert keks.unwrap(wrapped, subject_id="acc-1") == DATA_KEY


def test_wrapping_the_same_key_twice_uses_a_fresh_nonce() -> None:
    keks = KeyEncryptionKeys.parse(entry("k1", K1))

    first, second = keks.wrap(DATA_KEY, subject_id="acc-1"), keks.wrap(DATA_KEY, subject_id="acc-1")

    assert first.blob[:12] != second.blob[:12]
    assert first.blob != second.blob


def test_a_wrapped_key_moved_to_another_subject_does_not_unwrap() -> None:
    keks = KeyEncryptionKeys.parse(entry("k1", K1))
    wrapped = keks.wrap(DATA_KEY, subject_id="acc-1")

    with pytest.raises(WrongKeyEncryptionKey):
        keks.unwrap(wrapped, subject_id="acc-2")


def test_a_kek_rotation_needs_no_event_rewritten() -> None:
    old = KeyEncryptionKeys.parse(entry("k1", K1)).wrap(DATA_KEY, subject_id="acc-1")

    rotating = KeyEncryptionKeys.parse(f"{entry('k2', K2)},{entry('k1', K1)}")
    assert rotating.unwrap(old, subject_id="acc-1") == DATA_KEY
    rewrapped = rotating.rewrap(old, subject_id="acc-1")
    assert rewrapped.kek_id == "k2"

    rotated = KeyEncryptionKeys.parse(entry("k2", K2))
    assert rotated.unwrap(rewrapped, subject_id="acc-1") == DATA_KEY
    with pytest.raises(UnknownKeyEncryptionKey, match="'k1'") as refused:
        rotated.unwrap(old, subject_id="acc-1")
    assert refused.value.kek_id == "k1"


def test_rewrapping_a_key_already_under_the_current_kek_changes_nothing() -> None:
    keks = KeyEncryptionKeys.parse(entry("k1", K1))
    wrapped = keks.wrap(DATA_KEY, subject_id="acc-1")

    assert keks.rewrap(wrapped, subject_id="acc-1") is wrapped


def test_rewrapping_still_checks_the_key_opens() -> None:
    keks = KeyEncryptionKeys.parse(entry("k1", K1))
    wrapped = keks.wrap(DATA_KEY, subject_id="acc-1")

    with pytest.raises(WrongKeyEncryptionKey):
        keks.rewrap(wrapped, subject_id="acc-2")


def test_another_key_under_the_same_id_is_the_wrong_key() -> None:
    wrapped = KeyEncryptionKeys.parse(entry("k1", K1)).wrap(DATA_KEY, subject_id="acc-1")
    impostor = KeyEncryptionKeys.parse(entry("k1", IMPOSTOR))

    with pytest.raises(WrongKeyEncryptionKey, match="'k1'") as refused:
        impostor.unwrap(wrapped, subject_id="acc-1")
    assert refused.value.kek_id == "k1"
    assert not any(form in str(refused.value) for form in material(K1, IMPOSTOR, DATA_KEY))


def test_an_altered_or_truncated_wrapped_key_is_refused() -> None:
    keks = KeyEncryptionKeys.parse(entry("k1", K1))
    wrapped = keks.wrap(DATA_KEY, subject_id="acc-1")
    flipped = bytes([wrapped.blob[0] ^ 1]) + wrapped.blob[1:]

    for blob in (flipped, wrapped.blob[:-1], wrapped.blob[:20]):
        with pytest.raises(WrongKeyEncryptionKey):
            keks.unwrap(WrappedKey(kek_id="k1", blob=blob), subject_id="acc-1")


@pytest.mark.parametrize("size", [16, 31, 33])
def test_only_32_byte_data_keys_are_wrapped(size: int) -> None:
    keks = KeyEncryptionKeys.parse(entry("k1", K1))

    with pytest.raises(ValueError, match="must be 32 bytes"):
        keks.wrap(os.urandom(size), subject_id="acc-1")


# --- The setting ------------------------------------------------------------------------

B64_K1 = base64.b64encode(K1).decode()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no key-encryption keys"),
        ("  ", "no key-encryption keys"),
        (f"k1:{B64_K1},", "entry 2 is empty"),
        (B64_K1, "entry 1 has no ':'"),
        (f"{B64_K1}:k1", "entry 1: a key id is 1 to 32"),
        (f"k 1:{B64_K1}", "entry 1: a key id is 1 to 32"),
        (f":{B64_K1}", "entry 1: a key id is 1 to 32"),
        (f"{'k' * 33}:{B64_K1}", "entry 1: a key id is 1 to 32"),
        (f"k1:{B64_K1},k1:{base64.b64encode(K2).decode()}", "'k1' appears more than once"),
        (f"k1:{B64_K1[:-2]}!!", "'k1' is not base64"),
        (f"k1:-{B64_K1[1:]}", "'k1' is not base64"),
        (f"k1:{base64.b64encode(K1[:16]).decode()}", "'k1' must be 32 bytes, got 16"),
        (f"k1:{base64.b64encode(K1 + b'x').decode()}", "'k1' must be 32 bytes, got 33"),
    ],
    ids=[
        "empty",
        "blank",
        "empty entry",
        "no id",
        "key where the id goes",
        "space in id",
        "empty id",
        "long id",
        "duplicate id",
        "not base64",
        "urlsafe alphabet",
        "16 bytes",
        "33 bytes",
    ],
)
def test_a_bad_setting_is_refused_with_a_message_free_of_key_material(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        KeyEncryptionKeys.parse(spec)

    assert not any(form in str(refused.value) for form in material(K1, K2))


def test_ids_may_use_letters_digits_dashes_and_underscores() -> None:
    kek_id = "Kek_2026-01" + "x" * 21

    assert KeyEncryptionKeys.parse(entry(kek_id, K1)).current_id == kek_id


def test_the_repr_shows_ids_and_a_fingerprint_but_no_key() -> None:
    keks = KeyEncryptionKeys.parse(f"{entry('k2', K2)},{entry('k1', K1)}")

    assert repr(keks) == f"KeyEncryptionKeys(ids=('k2', 'k1'), current_fingerprint='{keks.fingerprint()}')"
    assert not any(form in repr(keks) for form in material(K1, K2))


# --- Fingerprints -----------------------------------------------------------------------


def test_a_fingerprint_is_16_hex_digits_that_depend_only_on_the_key() -> None:
    fingerprint = KeyEncryptionKeys.parse(entry("k1", K1)).fingerprint()

    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint)
    assert KeyEncryptionKeys.parse(entry("other", K1)).fingerprint() == fingerprint
    assert KeyEncryptionKeys.parse(entry("k1", IMPOSTOR)).fingerprint() != fingerprint
    assert fingerprint not in K1.hex()


def test_every_configured_kek_has_a_fingerprint_and_the_current_one_is_the_default() -> None:
    keks = KeyEncryptionKeys.parse(f"{entry('k2', K2)},{entry('k1', K1)}")

    assert keks.fingerprint() == keks.fingerprint("k2") == KeyEncryptionKeys.parse(entry("k2", K2)).fingerprint()
    assert keks.fingerprint("k1") == KeyEncryptionKeys.parse(entry("k1", K1)).fingerprint()
    with pytest.raises(UnknownKeyEncryptionKey, match="'k3'"):
        keks.fingerprint("k3")


# --- Stored form ------------------------------------------------------------------------


def test_a_wrapped_key_encodes_to_compact_json_and_back() -> None:
    wrapped = KeyEncryptionKeys.parse(entry("k1", K1)).wrap(DATA_KEY, subject_id="acc-1")

    encoded = wrapped.encode()

    assert encoded == b'{"kek":"k1","key":"' + base64.b64encode(wrapped.blob) + b'"}'
    assert WrappedKey.decode(encoded) == wrapped


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b'["k1", "AAAA"]', 'exactly "kek" and "key"'),
        (b'{"kek": "k1"}', 'exactly "kek" and "key"'),
        (b'{"kek": "k1", "key": "", "extra": 1}', 'exactly "kek" and "key"'),
        (b'{"kek": "k 1", "key": "AAAA"}', "kek is not a key id"),
        (b'{"kek": 1, "key": "AAAA"}', "kek is not a key id"),
        (b'{"kek": "k1", "key": "!!!!"}', "is not base64"),
        (b'{"kek": "k1", "key": 42}', "is not base64"),
        (b'{"kek": "k1", "key": "AAAA"}', "is not base64 of a nonce, a key and a tag"),
    ],
)
def test_a_malformed_stored_key_is_refused(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        WrappedKey.decode(raw)
