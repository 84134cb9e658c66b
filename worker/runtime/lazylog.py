"""A structlog logger imported on first use: ``shoal runtime`` runs once per container
operation, and importing structlog costs more than most operations (~60 ms here)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

# logging.WARNING: the logging package costs ~4 ms to import, too much for a constant.
WARNING = 30

_cli_level: int | None = None
_setup: Callable[[], None] | None = None


def configure_cli(level: int = WARNING) -> None:
    """For the command line: log at ``level`` and up, to stderr, once something logs."""
    global _cli_level
    _cli_level = level


def before_first_use(setup: Callable[[], None]) -> None:
    """Have ``setup`` (a structlog configuration) run when the first log call imports structlog,
    before ``configure_cli``'s level and stream are applied over it."""
    global _setup
    _setup = setup


class LazyLogger:
    """Has the methods of a structlog logger; structlog is imported by the first call."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._log: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._log is None:
            import structlog
            _configure()
            self._log = structlog.get_logger(self._name)
        return getattr(self._log, method)


def _configure() -> None:
    import structlog

    global _setup
    if _setup is not None:
        setup, _setup = _setup, None
        setup()
    if _cli_level is not None:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(_cli_level),
                            logger_factory=structlog.PrintLoggerFactory(sys.stderr))
