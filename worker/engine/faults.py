"""Crash points for tests: a worker that kills itself with SIGKILL at a named point of create
or start, so a test can reproduce "the worker died mid-create" deterministically.

Set ``SHOAL_TEST_CRASH_AT`` to a point's name (see ``POINTS``) in a worker's environment; the
variable is meant for tests only (tests/worker/test_crash_recovery.py) and is read each time a
point is passed, so nothing else in the worker changes when it is unset.
"""

from __future__ import annotations

import os

from protocol import signals

ENV = "SHOAL_TEST_CRASH_AT"
POINTS = (
    "create.prepared",  # the rootfs and bundle are made, the record still says "creating"
    "start.runtime-created",  # the runtime holds a created init; the record says "created"
    "start.runtime-started",  # the command runs; the record still says "created"
)


def crash_point(name: str) -> None:
    """Die here, at once and without cleaning up, when the environment asks for ``name``."""
    assert name in POINTS, name
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signals.SIGKILL)
