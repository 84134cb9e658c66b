"""What every verb of ``shoal runtime`` shares: help pages laid out as runc's (NAME, USAGE,
DESCRIPTION, OPTIONS), an unknown verb answered "No help topic" (runc's exit status 3), a
shoal error printed on one line (and logged to ``--log``), the runtime of the context, the name
the program answers to, and the version lines."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import NoReturn

import click

from protocol.errors import ShoalError
from worker.runtime import verbs
from worker.runtime.ops import Runtime


class UnknownVerb(click.UsageError):
    """A verb (or help topic) the runtime does not have."""

    exit_code = 3

    def __init__(self, name: str, ctx: click.Context | None = None) -> None:
        super().__init__(f"No help topic for {name!r}", ctx)


def _help_page(cmd: click.Command, ctx: click.Context, formatter: click.HelpFormatter,
               commands: list[tuple[str, str]]) -> None:
    path = ctx.command_path
    summary, _, description = inspect.cleandoc(cmd.help or "").partition("\n\n")
    with formatter.section("NAME"):
        formatter.write_text(f"{path} - {' '.join(summary.split())}")
    with formatter.section("USAGE"):
        formatter.write_text(f"{path} {' '.join(cmd.collect_usage_pieces(ctx))}")
    if description.strip():
        with formatter.section("DESCRIPTION"):
            formatter.write_text(description)
    if commands:
        with formatter.section("COMMANDS"):
            formatter.write_dl(commands)
    options = [rec for p in cmd.get_params(ctx) if (rec := p.get_help_record(ctx))]
    if options:
        with formatter.section("GLOBAL OPTIONS" if commands else "OPTIONS"):
            formatter.write_dl(options)


class RuncCommand(click.Command):
    """A verb whose help page is laid out as runc's."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _help_page(self, ctx, formatter, [])


class RuncGroup(click.Group):
    """The runtime's verbs: runc's help layout, runc's answer to an unknown verb, and a shoal
    error as one line on stderr with exit status 1."""

    command_class = RuncCommand

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                commands.append((name, cmd.get_short_help_str(limit=70)))
        _help_page(self, ctx, formatter, commands)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if self.get_command(ctx, name) is None and not name.startswith("-"):
            raise UnknownVerb(name, ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ShoalError as exc:
            fail(ctx, str(exc))


def fail(ctx: click.Context, message: str, code: int = 1) -> NoReturn:
    """End the command: ``message`` on stderr, and in the log file if there is one."""
    verbs.fail(message, code, logged=isinstance(ctx.obj, dict) and bool(ctx.obj.get("log_file")))


def runtime_of(ctx: click.Context) -> Runtime:
    root: Path = ctx.obj["root"]  # the runtime group's, shared by its verbs' contexts
    return Runtime(root)
