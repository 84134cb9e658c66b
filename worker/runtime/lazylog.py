"""A structlog logger imported on first use: ``shoal runtime`` runs once per container
operation, and importing structlog costs more than most operations (~60 ms here).

For the command line, a call below the configured level is dropped without importing
structlog at all, so debug events cost nothing unless ``--debug`` asked for them; ``--log``
and ``--log-format`` send the events to a file, as key=value text or JSON lines.
"""

from __future__ import annotations

import sys

# Every runtime command imports this module: typing (~5 ms) only for the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

# logging's numbers: the logging package costs ~4 ms to import, too much for constants.
DEBUG = 10
WARNING = 30
_LEVELS = {"debug": 10, "info": 20, "msg": 20, "warning": 30, "warn": 30, "error": 40,
           "exception": 40, "critical": 50, "fatal": 50}
LOG_FORMATS = ("text", "json")

_cli_level: int | None = None
_cli_stream: TextIO | None = None
_cli_format: str | None = None
_setup: Callable[[], None] | None = None


def configure_cli(level: int = WARNING, *, stream: TextIO | None = None,
                  log_format: str | None = None) -> None:
    """For the command line: log at ``level`` and up, once something logs, to ``stream``
    (stderr if None) as ``log_format`` (``text``, ``json``, or None: whatever the program
    configured with ``before_first_use``, else structlog's default)."""
    global _cli_level, _cli_stream, _cli_format
    if log_format is not None and log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    _cli_level, _cli_stream, _cli_format = level, stream, log_format


def before_first_use(setup: Callable[[], None]) -> None:
    """Have ``setup`` (a structlog configuration) run when the first log call imports structlog,
    before ``configure_cli``'s level and stream are applied over it."""
    global _setup
    _setup = setup


def _drop(*_args: object, **_kwargs: object) -> None:
    return None


class LazyLogger:
    """Has the methods of a structlog logger; structlog is imported by the first call that
    the command line's level lets through."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._log: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._log is None:
            level = _LEVELS.get(method)
            if _cli_level is not None and level is not None and level < _cli_level:
                return _drop
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
    if _cli_level is None:
        return
    stream = _cli_stream if _cli_stream is not None else sys.stderr
    settings: dict[str, Any] = {
        "wrapper_class": structlog.make_filtering_bound_logger(_cli_level),
        "logger_factory": structlog.PrintLoggerFactory(stream),
    }
    if _cli_format is not None:
        renderer: structlog.types.Processor
        if _cli_format == "json":
            # Compact, as runc's (logrus) lines: "level":"debug".
            renderer = structlog.processors.JSONRenderer(separators=(",", ":"))
        else:
            renderer = structlog.processors.LogfmtRenderer(
                key_order=["time", "level", "event"], drop_missing=True)
        settings["processors"] = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.format_exc_info,
            renderer,
        ]
    structlog.configure(**settings)
