"""The runtime's command line for its hot verbs, without click: a runtime command runs once per
container operation, and importing click costs more than the container does.

``main`` reads the global flags and one of the verbs create, start, state, kill, delete, run
and version with their flags, as ``--flag value`` or ``--flag=value`` (or ``--version`` on its
own). Whatever else it is given (help, another verb, a flag it does not know, a missing value)
it hands to the click command line, which answers as it always has; ``VERBS`` and ``GLOBAL``
must name exactly the click commands' options (a test compares them).
"""

from __future__ import annotations

import gc
import sys

TYPE_CHECKING = False  # typing itself costs a runtime command milliseconds to import
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class Options:
    """Which flags (no value) and which options (one value each) a command takes, under every
    spelling, mapped to the name its function takes; and how many arguments it takes."""

    def __init__(self, flags: dict[str, str], values: dict[str, str],
                 arguments: tuple[int, int] = (1, 1)) -> None:
        self.flags = flags
        self.values = values
        self.arguments = arguments


GLOBAL = Options({"--debug": "debug", "--version": "version", "-v": "version"},
                 {"--root": "root", "--log": "log_path", "--log-format": "log_format"},
                 (0, 0))
_BUNDLE = {"--bundle": "bundle", "-b": "bundle", "--console-socket": "console_socket",
           "--pid-file": "pid_file"}
VERBS: dict[str, Options] = {
    "create": Options({"--no-pivot": "no_pivot"}, _BUNDLE),
    "run": Options({"--detach": "detach", "-d": "detach", "--keep": "keep",
                    "--no-pivot": "no_pivot"}, _BUNDLE),
    "start": Options({}, {}),
    "state": Options({}, {}),
    "kill": Options({"--all": "all_processes", "-a": "all_processes"}, {}, (1, 2)),
    "delete": Options({"--force": "force", "-f": "force"}, {}),
    "version": Options({}, {}, (0, 0)),
}
LOG_FORMATS = ("text", "json")  # worker.runtime.lazylog's, which a test compares


class Parsed:
    """A command line the quick path runs: the global options, the verb, its options and its
    arguments."""

    def __init__(self, verb: str, global_options: dict[str, object],
                 options: dict[str, object], arguments: list[str]) -> None:
        self.verb = verb
        self.global_options = global_options
        self.options = options
        self.arguments = arguments


def _take(args: Sequence[str], i: int, spec: Options, into: dict[str, object]) -> int | None:
    """Read the flag or option at ``args[i]`` into ``into``: the index after it, or None if
    ``spec`` does not know it or its value is missing."""
    word = args[i]
    name, eq, value = word.partition("=")
    if not eq and word in spec.flags:
        into[spec.flags[word]] = True
        return i + 1
    if name in spec.values:
        if eq:
            into[spec.values[name]] = value
            return i + 1
        if i + 1 < len(args):
            into[spec.values[name]] = args[i + 1]
            return i + 2
    return None


def parse(args: Sequence[str]) -> Parsed | None:
    """The command line if the quick path runs it, else None (click's to answer)."""
    global_options: dict[str, object] = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        after = _take(args, i, GLOBAL, global_options)
        if after is None:
            return None
        i = after
    if global_options.pop("version", False):
        # Click's --version answers at once, whatever verb follows: here, only on its own.
        return Parsed("version", global_options, {}, []) if i == len(args) else None
    if i == len(args) or args[i] not in VERBS:
        return None
    if global_options.get("log_format", "text") not in LOG_FORMATS:
        return None
    verb, spec = args[i], VERBS[args[i]]
    options: dict[str, object] = {}
    arguments: list[str] = []
    i += 1
    while i < len(args):
        if args[i].startswith("-") and args[i] != "-":
            after = _take(args, i, spec, options)
            if after is None:
                return None
            i = after
        else:
            arguments.append(args[i])
            i += 1
    low, high = spec.arguments
    if not low <= len(arguments) <= high:
        return None
    return Parsed(verb, global_options, options, arguments)


def main(args: Sequence[str] | None = None, *,
         fallback: Callable[[], object] | None = None,
         before_logging: Callable[[], None] | None = None) -> None:
    """Run ``args`` (``sys.argv[1:]``) if the quick path reads them, else ``fallback`` (the
    click runtime command line by default). ``before_logging``: the program's own logging
    set-up, run when the first event is logged (structlog is imported only then)."""
    parsed = parse(sys.argv[1:] if args is None else args)
    if parsed is None:
        if fallback is None:
            from worker.runtime.cli import main as click_main

            fallback = click_main
        fallback()
        return
    # A hot verb is over in milliseconds and makes no reference cycles worth collecting, nor
    # does run's wait for its container: the collector would only walk the imports' objects,
    # again and again while they load (~5 ms of a command) and once more at the exit. The
    # exit skips the interpreter's teardown (protocol.process_end): a hot verb leaves no
    # thread with work to finish (the warm-up's may still wait in the kernel; its move is a
    # no-op) and closes its files.
    gc.disable()
    try:
        _run(parsed, before_logging)
    except SystemExit as exc:
        from protocol.process_end import end_now

        end_now(exc.code)
        raise


def _run(parsed: Parsed, before_logging: Callable[[], None] | None) -> None:
    if parsed.verb in ("create", "run"):
        from worker.runtime import attach_warmup

        attach_warmup.start()  # the kernel's wait for the init's cgroup move, meanwhile
    from worker.runtime import lazylog, verbs

    if parsed.verb == "version":  # before the operations' imports
        verbs.version()
        sys.exit(0)
    # msgspec (imported here only to check a seccomp profile) imports typing_extensions, if it
    # can, only for backports Python 3.11 has in typing (get_type_hints with extras, Required):
    # milliseconds of a runtime command. Nothing else on this path imports it at run time
    # (click and structlog only under TYPE_CHECKING or before 3.11): this process goes without.
    sys.modules.setdefault("typing_extensions", None)  # type: ignore[arg-type]
    from protocol.errors import ShoalError
    from worker.runtime.ops import DEFAULT_ROOT, Runtime

    if before_logging is not None:
        lazylog.before_first_use(before_logging)
    g = parsed.global_options
    log_path = g.get("log_path")
    assert log_path is None or isinstance(log_path, str)
    log_format = g.get("log_format")
    assert log_format is None or isinstance(log_format, str)
    try:
        stream = verbs.open_logging(bool(g.get("debug")), log_path, log_format)
    except OSError as exc:
        verbs.fail(f"cannot open the log file: {exc}")
    root = g.get("root", DEFAULT_ROOT)
    lazylog.LazyLogger(__name__).debug("runtime.command", verb=parsed.verb, root=str(root))
    verb: Callable[..., None] = getattr(verbs, parsed.verb)
    try:
        verb(Runtime(str(root)), *parsed.arguments, **parsed.options)
    except ShoalError as exc:
        verbs.fail(str(exc), logged=stream is not None)
    finally:
        if stream is not None:
            stream.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
