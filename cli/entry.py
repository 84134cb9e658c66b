"""The ``shoal`` program's entry (the console script, ``python -m cli``): ``shoal runtime`` goes
to the runtime's quick command line before click or the rest of the CLI is imported (a runtime
command runs once per container operation), ``shoal version`` prints at once; every other
command goes to ``cli.main``."""

from __future__ import annotations

import atexit
import os
import sys


def version_text() -> str:
    """What ``shoal version`` prints."""
    from protocol.version import PACKAGE_VERSION, PROTOCOL_VERSION

    return f"shoal {PACKAGE_VERSION} (protocol {PROTOCOL_VERSION})"


def internal_error(exc: BaseException) -> str:
    """How every shoal command reports an error that is not a shoal error: one line (the
    traceback with ``--log-level debug``, on the click path)."""
    return f"internal error: {type(exc).__name__}: {exc} (--log-level debug shows where)"


def main() -> None:
    if sys.argv[1:] == ["version"]:
        print(version_text())
        return
    if sys.argv[1:2] == ["runtime"]:
        from worker.runtime import quick

        try:
            quick.main(sys.argv[2:], fallback=_click_main, before_logging=_configure_logging)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as exc:  # a shoal error was said by the runtime; this is a bug
            print(f"Error: {internal_error(exc)}", file=sys.stderr)
            sys.exit(1)
        return
    _click_main()


def _click_main() -> None:
    from cli.main import main as click_main

    try:
        click_main()
    except SystemExit as exc:
        if click_main.client_verb_ran():
            _end_at_once(exc.code)
        raise


def _end_at_once(code: object) -> None:
    """End a client verb's process without the interpreter's teardown, which frees every
    module and object one by one: ~20 ms of CPU after a ``run`` has its answer, a fifth of
    the command's. What a program's end must still do is done: the atexit functions, and
    stdout and stderr flushed. (A client verb leaves no thread that is not a daemon, and
    closes its files.) Returns, for the ordinary exit, when that is not plainly possible: a
    status Python prints (not an int), or output that cannot be flushed (Python reports it)."""
    if code is not None and not isinstance(code, int):
        return
    if not _flushed():
        return
    atexit._run_exitfuncs()
    # What the atexit functions wrote; if that cannot go out, Python's status for it.
    os._exit((code or 0) if _flushed() else 120)


def _flushed() -> bool:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return False
    return True


def _configure_logging() -> None:
    # As `shoal runtime` through cli.main: shoal's logging ($SHOAL_LOG, JSON lines when
    # stderr is no terminal), configured when the runtime first logs.
    from cli.log_config import configure_logging

    configure_logging(None)
