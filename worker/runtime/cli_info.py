"""``shoal runtime``'s verbs that describe containers or the runtime itself: list, ps, spec,
features, version and help, with runc's output shapes."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import click

from worker.runtime import verbs
from worker.runtime.cli_base import RuncCommand, UnknownVerb, fail, runtime_of
from worker.runtime.state import OciState

# runc's columns: at least 12 wide, 3 spaces between (Go's tabwriter as runc sets it up).
_MIN_WIDTH = 12
_PADDING = 3


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, each as wide as its longest cell plus padding (the last as is)."""
    if not rows:
        return []
    widths = [max(_MIN_WIDTH, max(len(r[i]) for r in rows) + _PADDING)
              for i in range(len(rows[0]) - 1)]
    return ["".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + r[-1]
            for r in rows]


def _owner(uid: int) -> str:
    import pwd  # a C module: cheap, and only list needs it

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def _listed(state: OciState, owner: str) -> dict[str, object]:
    """One container as runc's list prints it in JSON (its field order, with the owner)."""
    doc: dict[str, object] = {
        "ociVersion": state.oci_version, "id": state.id, "pid": state.pid,
        "status": state.status, "bundle": state.bundle, "rootfs": state.rootfs or "",
        "created": state.created or "",
    }
    if state.annotations:
        doc["annotations"] = state.annotations
    doc["owner"] = owner
    return doc


@click.command(name="list", cls=RuncCommand)
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--quiet", "-q", is_flag=True, help="Print the container ids only.")
@click.pass_context
def list_(ctx: click.Context, fmt: str, quiet: bool) -> None:
    """List the containers under the runtime's --root."""
    rt = runtime_of(ctx)
    states = rt.list()
    if quiet:
        for s in states:
            click.echo(s.id)
        return
    owners = {}
    for s in states:
        try:
            owners[s.id] = _owner(os.stat(os.path.join(rt.root, s.id)).st_uid)
        except FileNotFoundError:  # deleted since it was listed
            owners[s.id] = ""
    if fmt == "json":
        click.echo(json.dumps([_listed(s, owners[s.id]) for s in states],
                              separators=(",", ":")))
        return
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[s.id, str(s.pid), s.status, s.bundle, s.created or "", owners[s.id]]
             for s in states]
    for line in table(rows):
        click.echo(line)


# Everything after the container id is for ps(1): its flags are its own.
@click.command(cls=RuncCommand, context_settings={"allow_interspersed_args": False})
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="ps(1)'s table, or the host pids as a JSON array.")
@click.argument("container_id")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ps(ctx: click.Context, fmt: str, container_id: str, ps_args: tuple[str, ...]) -> None:
    """The processes of a container.

    Arguments after the container id go to ps(1) (default -ef), whose table is printed with
    the container's processes only.
    """
    pids = runtime_of(ctx).ps(container_id)
    if fmt == "json":
        click.echo(json.dumps(pids))
        return
    import subprocess  # only the table needs ps(1)

    args = list(ps_args[1:] if ps_args[:1] == ("--",) else ps_args) or ["-ef"]
    done = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        fail(ctx, f"ps {' '.join(args)} failed ({done.returncode}): "
                  f"{(done.stderr or done.stdout).strip()}")
    header, *lines = done.stdout.splitlines()
    titles = header.split()
    if "PID" not in titles:
        fail(ctx, f"ps {' '.join(args)} printed no PID column")
    column = titles.index("PID")
    wanted = set(pids)
    click.echo(header)
    for line in lines:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            click.echo(line)


@click.command(cls=RuncCommand)
@click.option("--bundle", "-b", default=".", help="The bundle directory to write config.json in.")
@click.option("--rootless", is_flag=True, help="A config for an unprivileged user.")
@click.pass_context
def spec(ctx: click.Context, bundle: str, rootless: bool) -> None:
    """Write a starting config.json into the bundle.

    A shell in the bundle's rootfs directory, with new namespaces, the usual mounts, masked
    and read-only paths and a few capabilities. --rootless maps root to the calling user
    in a user namespace and drops what needs privileges (a network namespace of its own,
    sysfs, cgroup limits).
    """
    from worker.runtime.default_config import default_config, make_rootless

    config = default_config()
    if rootless:
        config = make_rootless(config, os.geteuid(), os.getegid())
    path = os.path.join(bundle, "config.json")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        fail(ctx, f"{path} exists: remove it first")
    except OSError as exc:
        fail(ctx, f"cannot write {path}: {exc.strerror}")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(config, indent="\t"))


@click.command(cls=RuncCommand)
def features() -> None:
    """Print what the runtime supports, as the runtime-spec features JSON."""
    from protocol.version import package_version
    from worker.runtime.features import features as document

    click.echo(json.dumps(document(package_version()), indent=4))


@click.command(cls=RuncCommand)
def version() -> None:
    """Print the runtime's version and the runtime-spec version it implements."""
    verbs.version()


@click.command(name="help", cls=RuncCommand)
@click.argument("verb", required=False)
@click.pass_context
def help_(ctx: click.Context, verb: str | None) -> None:
    """Print the list of verbs, or the help of one."""
    assert ctx.parent is not None
    group = ctx.parent.command
    if verb is None:
        click.echo(group.get_help(ctx.parent))
        return
    assert isinstance(group, click.Group)
    cmd = group.get_command(ctx.parent, verb)
    if cmd is None:
        raise UnknownVerb(verb, ctx)
    with click.Context(cmd, info_name=verb, parent=ctx.parent) as sub:
        click.echo(cmd.get_help(sub))


VERBS = [list_, ps, spec, features, version, help_]
