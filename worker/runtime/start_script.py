"""Writes the start-up scripts of shoal's two programs: executable Python files that the
kernel starts as ``python -S`` (no site) and that set their module path themselves, so a
command costs the interpreter and its own imports, nothing more (``site`` and the editable
install's ``.pth`` files are ~3 ms of every command).

- ``shoal-runtime``, the OCI runtime (``worker.runtime.quick``), run as ``python -IS``: no
  environment variables and no user directory either, as a runtime started per container
  operation by containerd, docker or runc's tests should be.
- ``shoal``, the command (``cli.entry``), written over the console script pip installs (which
  starts Python with site); it keeps Python's environment variables, as pip's does.

    python -m worker.runtime.start_script [--command] PATH

deploy/setup.sh writes ``.venv/bin/shoal-runtime`` and ``.venv/bin/shoal``;
tests/runc/run-runc-bats.sh writes a drop-in named ``runc`` the same way (a file named runc
answers to runc's name).
"""

from __future__ import annotations

import os
import sys
import sysconfig

RUNTIME_ENTRY = "from worker.runtime.quick import main\nmain()\n"
COMMAND_ENTRY = "from cli.entry import main\nsys.exit(main())\n"


def script_text(python: str, path: list[str], *, command: bool = False) -> str:
    """The script: ``python`` run without site, ``path`` after the standard library on the
    module path (as site puts site-packages: the standard library's imports are not looked up
    in them first); the runtime's, or with ``command`` the shoal command's."""
    flags, what, entry = (("-S", "The shoal command", COMMAND_ENTRY) if command
                          else ("-IS", "shoal's OCI runtime", RUNTIME_ENTRY))
    option = " --command" if command else ""
    return (f"#!{python} {flags}\n"
            f'"""{what} (written by python -m worker.runtime.start_script{option})."""\n'
            "import sys\n"
            f"sys.path += {path!r}\n"
            f"{entry}")


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


def write(target: str, python: str | None = None, *, command: bool = False) -> None:
    """Write the script to ``target`` (atomically: a runtime may be running it), executable."""
    text = script_text(python or sys.executable, module_path(), command=command)
    tmp = f"{target}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)


if __name__ == "__main__":
    args = sys.argv[1:]
    command = args[:1] == ["--command"]
    if command:
        args = args[1:]
    if len(args) != 1:
        print("usage: python -m worker.runtime.start_script [--command] PATH", file=sys.stderr)
        sys.exit(2)
    write(args[0], command=command)
