"""``shoal runtime checkpoint`` and ``restore``: runc hands these to CRIU. shoal's runtime does
not drive CRIU yet, so both refuse, saying why in the order an operator would fix it: CRIU is
not installed; CRIU is installed but ``criu check`` fails on this host (its first error);
CRIU works but shoal cannot use it. Nothing is changed, and the exit status is 1 (runc's for
a failed checkpoint). runc's flags are taken whole, since the command refuses as a whole;
a bad --parent-path is named first, as runc names it before it runs CRIU.
"""

from __future__ import annotations

import os

import click

from worker.runtime.cli_base import RuncCommand, fail

_CHECK_TIMEOUT = 30.0


def criu_refusal() -> str:
    """Why a checkpoint cannot be taken here."""
    import shutil  # here: the command line's start imports neither
    import subprocess

    criu = shutil.which("criu")
    if criu is None:
        return "checkpoint/restore needs CRIU, which is not installed (Debian package criu)"
    try:
        check = subprocess.run([criu, "check"], capture_output=True, text=True,
                               timeout=_CHECK_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"checkpoint/restore needs CRIU, and `criu check` could not run: {exc}"
    if check.returncode != 0:
        errors = [line for line in (check.stderr + check.stdout).splitlines()
                  if line.startswith("Error")] or ["(no error message)"]
        return f"CRIU cannot work on this host: `criu check` failed: {errors[0]}"
    return "checkpoint/restore is not implemented by shoal's runtime (CRIU works here)"


_SETTINGS = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.command(cls=RuncCommand, context_settings=_SETTINGS)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def checkpoint(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Checkpoint a running container with CRIU (refused: see the message)."""
    parent = _value(args, "--parent-path")
    if parent is not None:
        # runc checks this before it asks CRIU anything: say it first too.
        if os.path.isabs(parent):
            fail(ctx, "--parent-path must be relative to --image-path")
        image = _value(args, "--image-path") or "checkpoint"
        if not os.path.isdir(os.path.join(image, parent)):
            fail(ctx, f"--parent-path {parent}: no such directory under {image}")
    fail(ctx, criu_refusal())


def _value(args: tuple[str, ...], flag: str) -> str | None:
    """The value of ``flag`` among runc's arguments (``--flag V`` or ``--flag=V``)."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


@click.command(cls=RuncCommand, context_settings=_SETTINGS)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def restore(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Restore a container from a CRIU checkpoint (refused: see the message)."""
    fail(ctx, criu_refusal())


VERBS = [checkpoint, restore]
