"""Well-known default addresses: where a scheduler listens (and so where the CLI looks first),
and where a standalone worker listens."""

from __future__ import annotations

DEFAULT_SCHEDULER = "tcp://127.0.0.1:7375"
DEFAULT_WORKER = "tcp://127.0.0.1:7376"
