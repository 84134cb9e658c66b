"""A structlog logger imported on first use: ``shoal runtime`` runs once per container
operation, and importing structlog costs more than most operations (~60 ms here)."""

from __future__ import annotations

import logging
import sys
from typing import Any

_cli_level: int | None = None


def configure_cli(level: int = logging.WARNING) -> None:
    """For the command line: log at ``level`` and up, to stderr, once something logs."""
    global _cli_level
    _cli_level = level


class LazyLogger:
    """Has the methods of a structlog logger; structlog is imported by the first call."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._log: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._log is None:
            import structlog
            if _cli_level is not None:
                structlog.configure(
                    wrapper_class=structlog.make_filtering_bound_logger(_cli_level),
                    logger_factory=structlog.PrintLoggerFactory(sys.stderr))
            self._log = structlog.get_logger(self._name)
        return getattr(self._log, method)
