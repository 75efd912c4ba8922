"""Forgetting a data subject: the command and the fact, shared by every aggregate that is a subject.

A data subject (app.domain.personal) is an aggregate whose id seals personal
values: an account (its owner, holder, references, and the bodies of the
messages it sent) or a conversation (its title). Forgetting one is a command on
that aggregate, so the processor that owns it decides it in order with every
other command on it: nothing decided after the fact can see the subject as
anything but forgotten.

`SubjectForgotten` is the audit record: who asked (the envelope's principal,
plus whether an operator or the subject themself asked) and when (the
envelope's time). It holds nothing personal. The write path destroys the
subject's data keys in the same Kafka transaction that stores it
(app.eventstore.shard_writer), and the read models erase the subject's values
when they apply it (projections/personal.py).

Forgetting is idempotent: a second request decides nothing and succeeds.
"""

from __future__ import annotations

from typing import Final, Literal

from .base import Command, Event

FORGOTTEN_EVENT: Final = "SubjectForgotten"

# Who asked, as a role: the principal that sent the command is on the envelope already.
Requester = Literal["operator", "subject"]


class ForgetSubject(Command):
    """Forget this account or conversation as a data subject (DELETE /subjects/{id})."""

    type: Literal["ForgetSubject"] = "ForgetSubject"
    requested_by: Requester


class SubjectForgotten(Event):
    """A data subject was forgotten: their data keys were destroyed with this fact (docs/privacy.md)."""

    type: Literal["SubjectForgotten"] = "SubjectForgotten"
    requested_by: str
