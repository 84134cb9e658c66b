"""``shoal runtime``: runc's verbs and flags over the native runtime, for tools written for runc."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import click

from protocol.errors import ShoalError
from worker.runtime import cli_checkpoint, cli_info, cli_resources, verbs
from worker.runtime.cli_base import RuncGroup, fail, runtime_of
from worker.runtime.lazylog import LOG_FORMATS, LazyLogger
from worker.runtime.ops import DEFAULT_ROOT, exit_code
from worker.runtime.state import OciState
from worker.runtime.verbs import program_name, version_lines

log = LazyLogger(__name__)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        for line in version_lines():
            click.echo(line)
        ctx.exit()


@click.group(cls=RuncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(path_type=Path), default=DEFAULT_ROOT, show_default=True,
              help="Directory of container state.")
@click.option("--debug", is_flag=True, help="Log debug events too.")
@click.option("--log", "log_path", default=None, metavar="FILE",
              help="Append the log events to FILE instead of stderr.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default=None,
              help="Log events as key=value text or JSON lines (default with --log or --debug: "
                   "text).")
@click.option("--systemd-cgroup", is_flag=True, hidden=True,
              help="Refused: cgroupsPath is a path under the runtime's own cgroup.")
@click.option("--version", "-v", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Print the version and exit.")
@click.pass_context
def runtime(ctx: click.Context, root: Path, debug: bool, log_path: str | None,
            log_format: str | None, systemd_cgroup: bool) -> None:
    """Open Container Initiative runtime

    shoal's native runtime, with runc's verbs and flags. Containers are made from bundles: a
    directory with a config.json (see the spec verb) and the root filesystem it names. Their
    state lives under --root.
    """
    ctx.ensure_object(dict)
    ctx.obj["root"] = root
    try:
        stream = verbs.open_logging(debug, log_path, log_format)
    except OSError as exc:
        fail(ctx, f"cannot open the log file: {exc}")
    if stream is not None:
        ctx.call_on_close(stream.close)
        ctx.obj["log_file"] = log_path
    if systemd_cgroup:
        fail(ctx, "--systemd-cgroup is not supported: cgroupsPath is a path under the "
                  "runtime's own cgroup")
    log.debug("runtime.command", verb=ctx.invoked_subcommand, root=str(root))


NO_PIVOT_HELP = ("Enter the root with MS_MOVE and chroot, not pivot_root (for a root "
                 "pivot_root cannot leave, as an initramfs; less isolated).")


@runtime.command()
@click.option("--bundle", "-b", default=".", help="Path to the bundle directory.")
@click.option("--console-socket", default=None, help="Unix socket that receives the pty master.")
@click.option("--pid-file", default=None)
@click.option("--no-pivot", is_flag=True, help=NO_PIVOT_HELP)
@click.argument("container_id")
@click.pass_context
def create(ctx: click.Context, bundle: str, console_socket: str | None, pid_file: str | None,
           no_pivot: bool, container_id: str) -> None:
    """Create a container; its process waits until start."""
    verbs.create(runtime_of(ctx), container_id, bundle=bundle, console_socket=console_socket,
                 pid_file=pid_file, no_pivot=no_pivot)


@runtime.command()
@click.argument("container_id")
@click.pass_context
def start(ctx: click.Context, container_id: str) -> None:
    """Let a created container's process run."""
    verbs.start(runtime_of(ctx), container_id)


@runtime.command()
@click.argument("container_id")
@click.pass_context
def state(ctx: click.Context, container_id: str) -> None:
    """Print the container's runtime-spec state as JSON."""
    verbs.state(runtime_of(ctx), container_id)


@runtime.command()
@click.option("--all", "-a", "all_processes", is_flag=True, help="Signal every process.")
@click.argument("container_id")
@click.argument("sig", default="SIGTERM")
@click.pass_context
def kill(ctx: click.Context, all_processes: bool, container_id: str, sig: str) -> None:
    """Send a signal to the container's init (or every process with --all)."""
    verbs.kill(runtime_of(ctx), container_id, sig, all_processes=all_processes)


@runtime.command()
@click.option("--force", "-f", is_flag=True, help="Kill the container first if it runs.")
@click.argument("container_id")
@click.pass_context
def delete(ctx: click.Context, force: bool, container_id: str) -> None:
    """Delete a stopped container (or any with --force), leaving nothing behind."""
    verbs.delete(runtime_of(ctx), container_id, force=force)


@runtime.command()
@click.argument("container_id")
@click.pass_context
def pause(ctx: click.Context, container_id: str) -> None:
    """Freeze every process of the container (the cgroup freezer).

    The container's status becomes paused until resume.
    """
    runtime_of(ctx).pause(container_id)


@runtime.command()
@click.argument("container_id")
@click.pass_context
def resume(ctx: click.Context, container_id: str) -> None:
    """Let the processes of a paused container run again."""
    runtime_of(ctx).resume(container_id)


@runtime.command()
@click.option("--bundle", "-b", default=".")
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the container.")
@click.option("--console-socket", default=None)
@click.option("--pid-file", default=None)
@click.option("--keep", is_flag=True, help="Do not delete the container after it exits.")
@click.option("--no-pivot", is_flag=True, help=NO_PIVOT_HELP)
@click.argument("container_id")
@click.pass_context
def run(ctx: click.Context, bundle: str, detach: bool, console_socket: str | None,
        pid_file: str | None, keep: bool, no_pivot: bool, container_id: str) -> None:
    """Create, start and (unless --detach) wait for a container, then delete it."""
    verbs.run(runtime_of(ctx), container_id, bundle=bundle, detach=detach,
              console_socket=console_socket, pid_file=pid_file, keep=keep, no_pivot=no_pivot)


# runc's status when exec itself fails (not the process: its status is exec's).
EXEC_FAILED = 255


# Everything after the container id is the command: its flags are its own.
@runtime.command(name="exec", context_settings={"allow_interspersed_args": False})
@click.option("--env", "-e", multiple=True, help="NAME=value, added to the container's env.")
@click.option("--cwd", default=None)
@click.option("--user", "-u", default=None, help="uid[:gid]")
@click.option("--detach", "-d", is_flag=True)
@click.option("--tty", "-t", "use_tty", is_flag=True, help="Give the process a new pty.")
@click.option("--console-socket", default=None, help="Unix socket that receives the pty master.")
@click.option("--pid-file", default=None)
@click.option("--process", "-p", "process_json", default=None,
              help="A runtime-spec process JSON file.")
@click.option("--additional-gids", "-g", "additional_gids", multiple=True, type=int,
              help="A supplementary group of the process (repeatable; replaces the init's).")
@click.option("--preserve-fds", type=click.IntRange(min=0), default=0,
              help="Pass on N descriptors past stdio (3 .. 3+N-1).")
@click.option("--ignore-paused", is_flag=True,
              help="Enter a paused container too (the process waits, frozen, for resume).")
@click.option("--cgroup", "cgroups", multiple=True, metavar="[CONTROLLER[,...]:]PATH",
              help="Join this sub-cgroup of the container's (repeatable).")
@click.argument("container_id")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx: click.Context, env: tuple[str, ...], cwd: str | None, user: str | None,
          detach: bool, use_tty: bool, console_socket: str | None, pid_file: str | None,
          process_json: str | None, additional_gids: tuple[int, ...], preserve_fds: int,
          ignore_paused: bool, cgroups: tuple[str, ...], container_id: str,
          command: tuple[str, ...]) -> None:
    """Run a process inside a running container; exits with its status."""
    from worker.runtime import syscalls as sc

    rt = runtime_of(ctx)
    args = list(command[1:] if command[:1] == ("--",) else command)
    uid = gid = None
    full_env: list[str] | None = None
    console_size: tuple[int, int] | None = None
    if process_json:
        from worker.runtime.records import decode_json
        from worker.runtime.spec import Process
        with open(process_json, "rb") as f:
            p = decode_json(Process, f.read())
        args, cwd, full_env = p.args, p.cwd, p.env
        uid, gid = p.user.uid, p.user.gid
        use_tty = use_tty or p.terminal
        if p.console_size is not None:
            console_size = (p.console_size.height, p.console_size.width)
    if user:
        u, _, g = user.partition(":")
        uid = int(u)
        gid = int(g) if g else None
    if env:
        base = full_env if full_env is not None else list(rt.record(container_id).exec_defaults.env)
        full_env = base + list(env)
    sc.set_child_subreaper()
    try:
        done = rt.exec(container_id, args, env=full_env, cwd=cwd, uid=uid, gid=gid,
                       tty=use_tty, console_size=console_size,
                       additional_gids=list(additional_gids) or None,
                       preserve_fds=preserve_fds, ignore_paused=ignore_paused,
                       cgroups=list(cgroups))
    except ShoalError as exc:
        fail(ctx, str(exc), EXEC_FAILED)
    try:
        verbs.write_pid(pid_file, done.pid)
    except OSError as exc:
        # As runc: a process nobody could find by its pid file is not left running.
        with contextlib.suppress(ProcessLookupError):
            os.kill(done.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(done.pid, 0)
        fail(ctx, f"cannot write the pid file: {exc}", EXEC_FAILED)
    master = done.pty_master
    if master is not None and (detach or console_socket):
        if console_socket:
            verbs.send_console(console_socket, master)
        os.close(master)
        master = None
    if detach:
        return
    if master is not None:
        code = verbs.proxy_pty(master, done.pid)
        os.close(master)
    else:
        _, status = os.waitpid(done.pid, 0)
        code = exit_code(status)
    log.debug("exec.exited", container_id=container_id, pid=done.pid, status=code)
    sys.exit(code)


for _verb in (*cli_info.VERBS, *cli_resources.VERBS, *cli_checkpoint.VERBS):
    runtime.add_command(_verb)



def main() -> None:
    """The runtime as a program of its own (``python -m worker.runtime``, or an executable
    file named runc that calls this: a drop-in that answers to runc's name)."""
    runtime(prog_name=program_name())


__all__ = ["OciState", "main", "runtime"]
