"""Shared test plumbing: quiet logs, the etcd fixtures, and the ``root`` marker's check."""

from __future__ import annotations

import logging
import sys

import pytest
import structlog

from tests.helpers.requirements import require_root

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

# Fixtures used across directories (store, cluster and CLI tests): a private etcd, a key root
# of the test's own, a bounded runner for async bodies; and pytester, to test the marker.
pytest_plugins = ["tests.helpers.store_fixtures", "pytester"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``root`` runs only where root tests can: the marker is the check, so a
    test cannot carry one without the other."""
    if item.get_closest_marker("root") is not None:
        require_root()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of another host OS (``@pytest.mark.windows_only``: Windows' kernel32, job
    objects) are deselected here, and reported as such, rather than skipped: they run in
    ``.github/workflows/windows.yml`` on a Windows runner."""
    if sys.platform == "win32":
        return
    other = [item for item in items if item.get_closest_marker("windows_only")]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if not item.get_closest_marker("windows_only")]
