"""A sealed value opens only for its subject and field under its key; without the key it is erased."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import pytest

from app.privacy.sealing import (
    ERASED,
    PREFIX,
    SealBroken,
    is_sealed,
    new_data_key,
    open_fields,
    open_sealed,
    seal,
    seal_fields,
)

KEY = new_data_key()
OTHER_KEY = new_data_key()
TEXT = "Ada Lovelace, 12 St James's Square"


def sealed_body(token: str) -> bytes:
    body = token.removeprefix(PREFIX)
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def test_a_data_key_is_32_random_bytes() -> None:
    assert len(KEY) == 32
    assert KEY != OTHER_KEY


def test_a_sealed_value_opens_to_its_plaintext() -> None:
    for text in (TEXT, "", "caf\u00e9 \u20ac \U0001f600", "x" * 4000):
        token = seal(text, subject_id="acc-1", field="owner", key=KEY)

        assert open_sealed(token, subject_id="acc-1", field="owner", key=KEY) == text


def test_a_token_is_ascii_base64url_without_padding_of_nonce_ciphertext_and_tag() -> None:
    token = seal(TEXT, subject_id="acc-1", field="owner", key=KEY)

    assert token.startswith("sealed:v1:") and token.isascii()
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token.removeprefix(PREFIX))
    assert len(sealed_body(token)) == 12 + len(TEXT.encode()) + 16
    assert TEXT not in token


def test_sealing_the_same_text_twice_gives_different_tokens() -> None:
    first = seal(TEXT, subject_id="acc-1", field="owner", key=KEY)
    second = seal(TEXT, subject_id="acc-1", field="owner", key=KEY)

    assert first != second
    assert sealed_body(first)[:12] != sealed_body(second)[:12]


@pytest.mark.parametrize(
    ("subject_id", "field", "key"),
    [("acc-2", "owner", KEY), ("acc-1", "holder", KEY), ("acc-1", "owner", OTHER_KEY)],
    ids=["another subject", "another field", "another key"],
)
def test_a_token_does_not_open_for_another_subject_field_or_key(subject_id: str, field: str, key: bytes) -> None:
    token = seal(TEXT, subject_id="acc-1", field="owner", key=KEY)

    with pytest.raises(SealBroken, match="does not authenticate"):
        open_sealed(token, subject_id=subject_id, field=field, key=key)


def test_the_associated_data_cannot_be_shifted_between_subject_and_field() -> None:
    token = seal(TEXT, subject_id="acc:1", field="owner", key=KEY)

    with pytest.raises(SealBroken):
        open_sealed(token, subject_id="acc", field="1:owner", key=KEY)


def tampered(token: str) -> str:
    body = bytearray(sealed_body(token))
    body[20] ^= 0x01
    return PREFIX + base64.urlsafe_b64encode(bytes(body)).decode().rstrip("=")


@pytest.mark.parametrize(
    "broken",
    [
        tampered,
        lambda token: token[:-1],
        lambda token: token[: len(PREFIX) + 20],
        lambda token: token.replace("sealed:v1:", "sealed:v2:"),
        lambda token: token + "!",
        lambda token: token[:15] + "\u00e9" + token[16:],
        lambda token: PREFIX,
        lambda token: PREFIX + "A",
    ],
    ids=["bit flipped", "truncated", "too short", "unknown version", "not base64url", "not ascii", "empty", "one char"],
)
def test_an_altered_or_malformed_token_is_refused_never_opened_to_garbage(broken: Callable[[str], str]) -> None:
    token = broken(seal(TEXT, subject_id="acc-1", field="owner", key=KEY))

    with pytest.raises(SealBroken) as refused:
        open_sealed(token, subject_id="acc-1", field="owner", key=KEY)
    assert "owner" in str(refused.value)
    assert TEXT not in str(refused.value)


def test_a_forgotten_subject_s_token_opens_as_erased() -> None:
    token = seal(TEXT, subject_id="acc-1", field="owner", key=KEY)

    assert open_sealed(token, subject_id="acc-1", field="owner", key=None) == ERASED == "[erased]"


@pytest.mark.parametrize("key", [b"", b"k" * 16, b"k" * 24, b"k" * 33], ids=["empty", "AES-128", "AES-192", "33 bytes"])
def test_a_data_key_other_than_32_bytes_is_refused(key: bytes) -> None:
    with pytest.raises(ValueError, match="must be 32 bytes"):
        seal(TEXT, subject_id="acc-1", field="owner", key=key)


def test_only_text_with_the_token_prefix_looks_sealed() -> None:
    assert is_sealed(seal(TEXT, subject_id="acc-1", field="owner", key=KEY))
    assert not is_sealed(TEXT)
    assert not is_sealed(None)
    assert not is_sealed(PREFIX.encode())
    assert not is_sealed(42)


# --- Payloads ---------------------------------------------------------------------------

PAYLOAD: dict[str, object] = {"owner": TEXT, "holder": None, "currency": "GBP", "type": "AccountOpened"}
FIELDS = ("owner", "holder", "nickname")


def test_sealing_a_payload_seals_only_the_named_text_and_leaves_the_original_alone() -> None:
    original = dict(PAYLOAD)

    sealed = seal_fields(PAYLOAD, FIELDS, subject_id="acc-1", key=KEY)

    assert PAYLOAD == original
    assert is_sealed(sealed["owner"])
    assert (sealed["holder"], sealed["currency"], sealed["type"]) == (None, "GBP", "AccountOpened")
    assert "nickname" not in sealed


def test_a_sealed_payload_opens_to_the_original() -> None:
    sealed = seal_fields(PAYLOAD, FIELDS, subject_id="acc-1", key=KEY)

    opened = open_fields(sealed, FIELDS, subject_id="acc-1", key=KEY)

    assert opened == PAYLOAD
    assert is_sealed(sealed["owner"])


def test_an_already_sealed_value_is_not_sealed_twice() -> None:
    once = seal_fields(PAYLOAD, FIELDS, subject_id="acc-1", key=KEY)

    twice = seal_fields(once, FIELDS, subject_id="acc-1", key=KEY)

    assert twice == once


def test_text_that_only_looks_sealed_is_sealed_like_any_other() -> None:
    lookalike = PREFIX + "written-by-a-person"

    sealed = seal_fields({"owner": lookalike}, ["owner"], subject_id="acc-1", key=KEY)

    assert sealed["owner"] != lookalike
    assert open_fields(sealed, ["owner"], subject_id="acc-1", key=KEY) == {"owner": lookalike}


def test_a_plain_value_from_before_sealing_passes_through_opening_unchanged() -> None:
    assert open_fields(PAYLOAD, FIELDS, subject_id="acc-1", key=KEY) == PAYLOAD


def test_a_forgotten_subject_s_values_are_erased_sealed_or_plain() -> None:
    sealed = seal_fields(PAYLOAD, ["owner"], subject_id="acc-1", key=KEY)
    legacy = {**PAYLOAD, "holder": "ada@example.org"}

    assert open_fields(sealed, FIELDS, subject_id="acc-1", key=None) == {**PAYLOAD, "owner": ERASED}
    assert open_fields(legacy, FIELDS, subject_id="acc-1", key=None) == {**PAYLOAD, "owner": ERASED, "holder": ERASED}


def test_opening_a_payload_with_a_tampered_value_is_refused() -> None:
    sealed = seal_fields(PAYLOAD, FIELDS, subject_id="acc-1", key=KEY)
    assert isinstance(sealed["owner"], str)

    with pytest.raises(SealBroken):
        open_fields({**sealed, "owner": tampered(sealed["owner"])}, FIELDS, subject_id="acc-1", key=KEY)


def test_a_value_moved_to_another_field_does_not_open() -> None:
    sealed = seal_fields(PAYLOAD, FIELDS, subject_id="acc-1", key=KEY)

    with pytest.raises(SealBroken):
        open_fields({"holder": sealed["owner"]}, FIELDS, subject_id="acc-1", key=KEY)


def test_only_text_can_be_sealed() -> None:
    with pytest.raises(TypeError, match="'recipients' holds list"):
        seal_fields({"recipients": ["acc-2"]}, ["recipients"], subject_id="acc-1", key=KEY)


def test_one_string_of_field_names_is_a_mistake_not_a_list_of_letters() -> None:
    with pytest.raises(TypeError, match="not one string"):
        seal_fields(PAYLOAD, "owner", subject_id="acc-1", key=KEY)
    with pytest.raises(TypeError, match="not one string"):
        open_fields(PAYLOAD, "owner", subject_id="acc-1", key=KEY)
