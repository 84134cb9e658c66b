"""The ``shoal`` command line."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from protocol.addresses import DEFAULT_SCHEDULER, DEFAULT_WORKER
from protocol.version import PROTOCOL_VERSION, package_version

if TYPE_CHECKING:
    from cli.readiness import ReadyNotifier

# Commands that live in their own modules, imported only when used: a `shoal ps` should not
# pay for the scheduler daemon, etcd's gRPC stubs or the runtime. Nor does this module import
# structlog, uvloop or msgspec before a command needs them: `shoal runtime` runs once per
# container operation, and `shoal version` should print at once.
LAZY_COMMANDS = {
    **{name: f"cli.containers:{name}" for name in [
        "start", "stop", "restart", "kill", "rm", "wait", "ps", "inspect", "logs", "top",
        "events"]},
    "create": "cli.running:create",
    "run": "cli.running:run",
    "exec": "cli.running:exec_",
    "images": "cli.images:images",
    "rmi": "cli.images:rmi",
    "image": "cli.images:image",
    "nodes": "cli.cluster:nodes",
    "node": "cli.cluster:node",
    "scheduler": "cli.daemons:scheduler_command",
    "runtime": "worker.runtime.cli:runtime",
}


# The daemons log (structlog); client verbs print their answers and log nothing.
LOGGING_COMMANDS = ("worker", "scheduler", "dev")


class LazyGroup(click.Group):
    """Imports a verb's module when the verb is used, and ends every run with one line on
    failure: a shoal error as the service said it, anything else as an internal error (its
    traceback with ``--log-level debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:
            from protocol.errors import ShoalError  # not before it is needed: `version`

            if isinstance(exc, ShoalError):
                from cli.client import one_line

                raise click.ClickException(one_line(exc)) from None
            if ctx.params.get("log_level") == "debug":
                raise
            raise click.ClickException(
                f"internal error: {type(exc).__name__}: {exc} (--log-level debug shows where)"
            ) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.option("-H", "--host", default=None, metavar="ADDR[,ADDR...]",
              help="Scheduler(s) or worker the verb talks to, tried in order (default: "
                   f"$SHOAL_HOST, else {DEFAULT_SCHEDULER}).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None, help="Log level of the daemons and the runtime (default: "
                                 "$SHOAL_LOG or info); debug also shows an internal error's "
                                 "traceback.")
@click.pass_context
def main(ctx: click.Context, host: str | None, log_level: str | None) -> None:
    """shoal: a message-driven distributed container scheduler."""
    if host is not None and ctx.invoked_subcommand in (*LOGGING_COMMANDS, "runtime",
                                                       "version"):
        raise click.UsageError(f"-H is for the client verbs; {ctx.invoked_subcommand} "
                               "does not talk to a service")
    if ctx.invoked_subcommand == "runtime":
        # The runtime imports structlog only if it logs (seldom): configure it at that point.
        from worker.runtime.lazylog import before_first_use

        before_first_use(lambda: _configure_logging(log_level))
    elif ctx.invoked_subcommand in LOGGING_COMMANDS:
        _configure_logging(log_level)


def _configure_logging(level: str | None) -> None:
    from cli.log_config import configure_logging  # imports structlog

    configure_logging(level)


@main.command()
@click.option("--workers", type=click.IntRange(1, 16), default=3, show_default=True)
@click.option("--listen", default=DEFAULT_SCHEDULER, show_default=True,
              help="The scheduler's address (the CLI's default host).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep state and logs here (default: a temporary dir, removed at the end).")
@click.option("--example", is_flag=True,
              help="Run an example job, show ps and nodes, then stop everything.")
def dev(workers: int, listen: str, state_dir: Path | None, example: bool) -> None:
    """A one-host cluster: a private etcd, a scheduler and N workers, as real processes."""
    import uvloop
    from rich.console import Console

    from cli.dev import run_dev
    from protocol.errors import ShoalError

    try:
        uvloop.run(run_dev(Console(), workers=workers, address=listen, state_dir=state_dir,
                           run_example=example))
    except ShoalError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def _ready_fd(ctx: click.Context, param: click.Parameter,
              value: int | None) -> ReadyNotifier | None:
    from cli.readiness import notifier_option  # imports structlog: only when used

    return notifier_option(ctx, param, value)


@main.command()
@click.option("--listen", default=DEFAULT_WORKER, show_default=True,
              help="Address to serve the container verbs on.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where containers, logs and state live (default: /var/lib/shoal/worker "
                   "as root).")
@click.option("--driver", type=click.Choice(["auto", "native", "process"]), default="auto",
              show_default=True, help="How containers run.")
@click.option("--join", default="", help="Schedulers to join (tcp://A:P[,tcp://B:P]); "
              "without it the worker stands alone.")
@click.option("--name", default="", help="Node id in the cluster (default: host name).")
@click.option("--label", "labels", multiple=True, help="Node label KEY=VALUE (repeatable).")
@click.option("--log-max-size", default="0", show_default=True,
              help="Rotate a container's json-file log at this size (e.g. 10m; 0: never).")
@click.option("--log-max-file", type=click.IntRange(1, 100), default=1, show_default=True,
              help="How many log files to keep per container when rotating.")
@click.option("--ready-fd", "ready", type=click.IntRange(min=0), default=None, metavar="N",
              callback=_ready_fd,
              help="Once joined (or, without --join, serving), write READY=1 and "
                   "LISTEN=ADDR to this inherited descriptor, then close it.")
def worker(listen: str, state_dir: Path | None, driver: str, join: str, name: str,
           labels: tuple[str, ...], log_max_size: str, log_max_file: int,
           ready: ReadyNotifier | None) -> None:
    """Run a worker: standalone, or part of a cluster with --join."""
    import uvloop

    from cli.container_spec import parse_memory
    from protocol.errors import ShoalError
    from worker.daemon import default_state_dir, run_worker

    for item in labels:
        if "=" not in item:
            raise click.BadParameter(f"label {item!r} is not KEY=VALUE", param_hint="--label")
    schedulers = [a.strip() for a in join.split(",") if a.strip()]
    try:
        uvloop.run(run_worker(listen, state_dir or default_state_dir(), driver,
                              join=schedulers, name=name,
                              labels=dict(item.split("=", 1) for item in labels),
                              log_max_size=parse_memory(log_max_size),
                              log_max_file=log_max_file,
                              on_ready=(lambda address: ready.notify(LISTEN=address))
                              if ready else None))
    except ShoalError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@main.command()
def version() -> None:
    """Print the package and protocol versions."""
    click.echo(f"shoal {package_version()} (protocol {PROTOCOL_VERSION})")


if __name__ == "__main__":
    main()
