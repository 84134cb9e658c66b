"""The compose group's verbs as click sees them: every verb is there, with its own help."""

from __future__ import annotations

from cli.compose.commands import compose


def test_every_verb_is_there_with_its_own_help() -> None:
    assert sorted(compose.commands) == [
        "build", "config", "down", "events", "exec", "images", "kill", "logs", "ls", "port",
        "ps", "pull", "push", "restart", "rm", "run", "start", "stop", "top", "up"]
    helps = [command.get_short_help_str() for command in compose.commands.values()]
    assert len(set(helps)) == len(helps), helps
