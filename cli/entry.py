"""The ``shoal`` program's entry (the console script, ``python -m cli``): ``shoal runtime`` goes
to the runtime's quick command line before click or the rest of the CLI is imported (a runtime
command runs once per container operation), ``shoal version`` prints at once; every other
command goes to ``cli.main``."""

from __future__ import annotations

import sys

from protocol.process_end import end_now


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
            # A client verb leaves no thread that is not a daemon, and closes its files.
            end_now(exc.code)
        raise


def _configure_logging() -> None:
    # As `shoal runtime` through cli.main: shoal's logging ($SHOAL_LOG, JSON lines when
    # stderr is no terminal), configured when the runtime first logs.
    from cli.log_config import configure_logging

    configure_logging(None)
