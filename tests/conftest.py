"""Shared test plumbing: quiet logs, the etcd fixtures, and the ``root`` marker's check."""

from __future__ import annotations

import logging

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
