"""Every aggregate module fulfils the one contract: the same names, and a KIND built from exactly them."""

from __future__ import annotations

from types import ModuleType

import pytest

from app.domain import accounts, conversations, messages
from app.domain.registry import AGGREGATES

MODULES = [accounts, conversations, messages]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_each_aggregate_module_exports_the_same_names(module: ModuleType) -> None:
    kind = module.KIND
    assert (kind.name, kind.decide, kind.evolve, kind.snapshot, kind.restore) == (
        module.NAME,
        module.decide,
        module.evolve,
        module.snapshot,
        module.restore,
    )
    assert AGGREGATES[module.NAME] is kind


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_the_type_maps_come_from_the_unions_and_match_each_type_literal(module: ModuleType) -> None:
    kind = module.KIND
    assert kind.commands and kind.events
    for name, cls in {**kind.commands, **kind.events}.items():
        assert cls.model_fields["type"].default == name
    assert set(kind.commands).isdisjoint(kind.events)
