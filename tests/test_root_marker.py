"""The ``root`` marker is its own check: a marked test is skipped where it cannot run, and is
an error, not a skip, under ``CI=true``; an unmarked test runs either way."""

from __future__ import annotations

import os

import pytest

MARKED = """
import pytest

@pytest.mark.root
def test_needs_root():
    pass

def test_plain():
    pass
"""


@pytest.mark.parametrize(("ci", "outcomes"), [
    ("", {"passed": 1, "skipped": 1}),
    ("true", {"passed": 1, "errors": 1}),
])
def test_a_root_test_off_root_is_skipped_or_in_ci_an_error(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str,
        outcomes: dict[str, int]) -> None:
    pytester.makepyfile(test_marked=MARKED)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("CI", ci)
    result = pytester.runpytest_inprocess("-p", "tests.conftest", "-rs")
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines(["*needs root*"])
