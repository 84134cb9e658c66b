"""Writes ``shoal-runtime``, the runtime's own start-up script: an executable Python file that
the kernel starts as ``python -IS`` (no site, no environment variables, no user directory)
and that sets its module path itself, so a runtime command costs the interpreter and the
runtime's own imports, nothing more (``site`` alone is ~4 ms; shoal's console script also
pays for its entry point).

    python -m worker.runtime.start_script PATH

deploy/setup.sh writes ``.venv/bin/shoal-runtime``; tests/runc/run-runc-bats.sh writes a
drop-in named ``runc`` the same way (a file named runc answers to runc's name).
"""

from __future__ import annotations

import os
import sys
import sysconfig


def script_text(python: str, path: list[str]) -> str:
    """The script: ``python`` run with -IS, ``path`` after the standard library on the module
    path (as site puts site-packages: the standard library's imports are not looked up in
    them first)."""
    return (f"#!{python} -IS\n"
            f'"""shoal\'s OCI runtime (written by python -m worker.runtime.start_script)."""\n'
            "import sys\n"
            f"sys.path += {path!r}\n"
            "from worker.runtime.quick import main\n"
            "main()\n")


def module_path() -> list[str]:
    """Where this interpreter finds shoal and its dependencies: the source tree this module
    comes from, then the environment's site-packages."""
    tree = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = sysconfig.get_paths()
    found = [tree]
    for key in ("purelib", "platlib"):
        if paths[key] not in found:
            found.append(paths[key])
    return found


def write(target: str, python: str | None = None) -> None:
    """Write the script to ``target`` (atomically: a runtime may be running it), executable."""
    text = script_text(python or sys.executable, module_path())
    tmp = f"{target}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m worker.runtime.start_script PATH", file=sys.stderr)
        sys.exit(2)
    write(sys.argv[1])
