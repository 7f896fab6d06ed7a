"""The suite's own machinery. README's command, `pytest -n 2 --dist loadgroup`, sends every test of one
`xdist_group` to one worker, so that an expensive module fixture (a real model, a comparison) is built once. When
grouping breaks, nothing fails — the suite only gets slower (pytest 9.2 did this to pytest-xdist: its issue #1386):
this test makes the breakage visible."""

import pytest

pytestmark = pytest.mark.xdist_group("suite_machinery")


def test_a_grouped_test_carries_its_group_under_loadgroup(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("runs only under `pytest -n N --dist loadgroup` (README's test command)")
    # pytest-xdist's scheduler groups by the suffix it appends to the node id; without it, groups are ignored
    assert request.node.nodeid.endswith("@suite_machinery"), (
        f"pytest-xdist did not group this test ({request.node.nodeid}): check the pytest pin in pyproject.toml")
