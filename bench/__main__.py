"""Run a benchmark: ``python -m bench NAME [options]``; ``python -m bench`` lists them.

Each benchmark is a module ``bench/NAME.py`` with ``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from cli.log_config import configure_logging


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name for m in pkgutil.iter_modules([str(here)])
        if not m.name.startswith("_") and not m.ispkg
    )


def run(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [options]\n\nbenchmarks: " + ", ".join(names))
        return 0 if argv else 2
    name = argv[0]
    if name not in names:
        print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    configure_logging("warning")
    module = importlib.import_module(f"bench.{name}")
    result: int = module.main(argv[1:])
    return result


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
