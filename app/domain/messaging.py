"""Paid messaging: the vocabulary its two aggregates share.

A conversation is a fixed set of participants (`conversations.py`). Each message is
its own aggregate (`messages.py`, keyed by message id) so messages in one
conversation never contend for a single stream: it is submitted with the price its
tariff gives, then a payment saga either delivers it (the sender was charged) or
rejects it (the charge was declined). Whether participants exist as accounts is
checked at the API against a read model; the domain only checks what it can see in
its own state.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator, Strict

MIN_PARTICIPANTS: Final = 2
MAX_PARTICIPANTS: Final = 50
# Everyone in a conversation but the sender: the largest recipient list there can be.
MAX_RECIPIENTS: Final = MAX_PARTICIPANTS - 1

# 8-4-4-4-12 hex digits, or the same 32 digits without hyphens. The uuid module is
# off limits here (it can generate ids), and validating needs only the shape.
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


def _canonical_uuid(text: str) -> str:
    # Hyphens all present or all absent: "1234abcd-12341234-..." is a typo, not a UUID.
    if _UUID.fullmatch(text) is None or text.count("-") not in (0, 4):
        raise ValueError(f"not a UUID: {text!r}")
    digits = text.replace("-", "").lower()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def distinct(ids: list[str]) -> list[str]:
    # Runs after each id is canonical, so case variants of one UUID count as duplicates.
    duplicates = sorted({account for account in ids if ids.count(account) > 1})
    if duplicates:
        raise ValueError(f"must be distinct; repeated: {', '.join(duplicates)}")
    return ids


# A UUID string in canonical lowercase 8-4-4-4-12 form.
AccountId = Annotated[str, Strict(), AfterValidator(_canonical_uuid)]
