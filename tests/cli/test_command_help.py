"""Every command's help is its own: click keeps a decorator's first docstring, so verbs that
once shared one decorator all said "Start containers"."""

from __future__ import annotations

import click

from cli.main import main


def test_each_command_has_its_own_help() -> None:
    ctx = click.Context(main)
    names = main.list_commands(ctx)
    helps: dict[str, str] = {}
    for name in names:
        command = main.get_command(ctx, name)
        assert command is not None, name
        helps[name] = (command.help or "").strip()
    assert {"ps", "start", "stop", "rm", "run", "exec"} <= set(helps)
    by_text: dict[str, list[str]] = {}
    for name, text in helps.items():
        assert text, f"{name} has no help"
        by_text.setdefault(text, []).append(name)
    shared = {text: names for text, names in by_text.items() if len(names) > 1}
    assert not shared, shared
