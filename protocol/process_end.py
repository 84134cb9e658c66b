"""Ending a short command's process without the interpreter's teardown.

Python's exit frees every module and object one by one and runs the garbage collector over
them: milliseconds of CPU after a command has done its work (~20 ms for a client verb of the
``shoal`` command, which imports click and the channels; ~2 ms for a runtime command). What a
program's end must still do is done here: the atexit functions run, and stdout and stderr are
flushed. The caller vouches for the rest: it leaves no thread whose work must finish, and it
has closed or flushed its own files.
"""

from __future__ import annotations

import atexit
import os
import sys


def end_now(code: object) -> None:
    """End the process with ``code`` (a ``SystemExit``'s), as Python would, but at once.
    Returns, for Python's ordinary exit, when that is not plainly possible: a status Python
    prints (not an int), or output that cannot be flushed (Python reports it)."""
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
