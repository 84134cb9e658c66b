"""The ``shoal`` command line."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from protocol.addresses import DEFAULT_SCHEDULER

# Commands that live in their own modules, imported only when used: a `shoal ps` should not
# pay for the scheduler daemon, etcd's gRPC stubs or the runtime. Nor does this module import
# structlog, uvloop or msgspec before a command needs them: `shoal runtime` runs once per
# container operation, and `shoal version` should print at once.
LAZY_COMMANDS = {
    **{name: f"cli.containers:{name}" for name in [
        "start", "stop", "restart", "kill", "rm", "wait", "ps", "inspect", "logs", "top",
        "events", "port"]},
    **{name: f"cli.container_changes:{name}" for name in [
        "pause", "unpause", "rename", "update", "stats"]},
    "network": "cli.networks:network",
    "compose": "cli.compose.commands:compose",
    "volume": "cli.volumes:volume",
    "create": "cli.running:create",
    "run": "cli.running:run",
    "exec": "cli.running:exec_",
    "images": "cli.images:images",
    "rmi": "cli.images:rmi",
    "image": "cli.images:image",
    "build": "cli.build:build",
    "cp": "cli.copying:cp",
    "export": "cli.copying:export",
    "history": "cli.disk_usage:history",
    "system": "cli.disk_usage:system",
    "save": "cli.image_archives:save",
    "load": "cli.image_archives:load",
    **{name: f"cli.registry:{name}" for name in ["pull", "push", "tag", "login", "logout",
                                                   "search"]},
    "nodes": "cli.cluster:nodes",
    "join-token": "cli.keys:join_token",
    "enroll": "cli.keys:enroll",
    "key": "cli.keys:key",
    "node": "cli.cluster:node",
    "scheduler": "cli.scheduler_daemon:scheduler_command",
    "worker": "cli.worker_daemon:worker_command",
    "dev": "cli.dev:dev_command",
    "runtime": "worker.runtime.cli:runtime",
}


# The daemons log (structlog); client verbs print their answers and log nothing.
LOGGING_COMMANDS = ("worker", "scheduler", "dev")
# The verbs whose process ends as Python ends any program (``cli.entry``): the daemons and the
# runtime, which may leave threads, atexit work or finalizers that must run.
LONG_LIVED_COMMANDS = (*LOGGING_COMMANDS, "runtime")


class LazyGroup(click.Group):
    """Imports a verb's module when the verb is used, and ends every run with one line on
    failure: a shoal error as the service said it, anything else as an internal error (its
    traceback with ``--log-level debug``). Remembers the verb it ran: ``client_verb_ran``."""

    verb: str | None = None

    def client_verb_ran(self) -> bool:
        """Whether the verb run was a client verb (neither a daemon nor the runtime): its
        process may end without the interpreter's teardown (``cli.entry``)."""
        return self.verb is not None and self.verb not in LONG_LIVED_COMMANDS

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        self.verb = name
        return name, command, rest

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
            from cli.entry import internal_error

            raise click.ClickException(internal_error(exc)) from None

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
    if host is not None and ctx.invoked_subcommand in (*LONG_LIVED_COMMANDS, "version"):
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
def version() -> None:
    """Print the package and protocol versions."""
    from cli.entry import version_text

    click.echo(version_text())


if __name__ == "__main__":
    from cli.entry import main as entry_main

    entry_main()
