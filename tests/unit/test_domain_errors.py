"""Domain errors are declared: code, title, a detail template and the facts as fields."""

import string

from app.domain import errors
from app.domain.errors import AccountNotFound, AggregateError, DomainError, InsufficientFunds


def declared() -> list[type[DomainError]]:
    found = [value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, DomainError)]
    return [cls for cls in found if cls not in (DomainError, AggregateError)]


def test_an_error_declared_in_five_lines_gets_its_constructor_detail_and_extras() -> None:
    class SeatsTaken(DomainError):
        code = "seats-taken"
        title = "Seats taken"
        template = "only {free} of {wanted} seats are free"
        free: int
        wanted: int

    error = SeatsTaken(free=1, wanted=3)
    assert (error.detail, str(error), error.extras()) == (
        "only 1 of 3 seats are free",
        error.detail,
        {"free": 1, "wanted": 3},
    )
    assert error != SeatsTaken(free=1, wanted=3)  # an exception is an occurrence, not a value


def test_a_fact_left_unknown_is_not_an_extra() -> None:
    assert AccountNotFound().extras() == {"aggregate_type": "Account"}
    assert AccountNotFound(aggregate_id="a-1").detail == "Account a-1 does not exist"


def test_every_template_names_only_its_own_facts_and_every_code_is_distinct() -> None:
    classes = declared()
    for cls in classes:
        placeholders = {name for _, name, _, _ in string.Formatter().parse(cls.template) if name}
        facts = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        assert placeholders <= facts | ({"aggregate"} if issubclass(cls, AggregateError) else set()), cls
    own_codes = [cls.code for cls in classes if "code" in vars(cls)]  # AccountNotFound shares its family's
    assert len(set(own_codes)) == len(own_codes)
    assert InsufficientFunds(balance=1, requested=2).detail == "balance 1 is less than requested 2"
