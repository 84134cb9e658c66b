"""Logging for shoal's programs: structlog events, readable on a terminal, JSON otherwise."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(level: str | None = None, *, stream: object = None) -> None:
    """Set up structlog once per process. ``SHOAL_LOG`` (debug, info, warning) sets the level."""
    name = (level or os.environ.get("SHOAL_LOG") or "info").upper()
    numeric = logging.getLevelNamesMapping().get(name, logging.INFO)
    out = stream if stream is not None else sys.stderr
    renderer: structlog.types.Processor
    if getattr(out, "isatty", lambda: False)():
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
