"""A refusal becomes a problem whose members a rule's facts cannot overwrite."""

from __future__ import annotations

from app.api.errors import problem_for_rejection
from app.domain.errors import MessageNotDelivered


def test_a_fact_named_like_a_problem_member_keeps_the_http_status() -> None:
    """A rejection remembered from before the fact was renamed `message_status` still answers 422."""
    problem = problem_for_rejection(
        {"code": "message-not-delivered", "title": "Message not delivered", "status": "pending_payment"}
    )
    assert problem.status == 422
    assert problem.extras == {"rejected_status": "pending_payment"}


def test_the_domain_names_no_fact_like_a_problem_member() -> None:
    refusal = MessageNotDelivered(message_status="pending_payment")
    assert refusal.extras() == {"message_status": "pending_payment"}
    assert problem_for_rejection({"code": refusal.code, **refusal.extras()}).status == 422
