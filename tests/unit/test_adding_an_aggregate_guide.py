"""The size docs/adding-an-aggregate.md claims for its example is its patch's (the patch itself is
applied and driven end to end by tests/integration/test_adding_an_aggregate.py)."""

from __future__ import annotations

from tests.guide import guide_patch, patch_size, stated_size


def test_the_guide_states_the_size_of_its_patch() -> None:
    assert stated_size() is not None, "the guide no longer states the example's size"
    assert patch_size(guide_patch()) == stated_size()
