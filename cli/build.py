"""``shoal build``: a Dockerfile build on the worker the CLI talks to.

The context directory goes to the worker as a tar on a byte stream, paced by the worker's
credit, with ``.dockerignore`` applied here (Docker's pattern rules; the Dockerfile travels in
the request, so ``-f`` may name one outside the context). The worker's output is printed as it
comes (``Step N/M : ...``); ``-q`` prints only the image id. Against a worker the build runs
there; against a scheduler it runs on a worker of the target platform and the image lands in
the cluster's store.
"""

from __future__ import annotations

import os
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import click

from channels._blocking import ByteSource
from cli.client import Client, ShoalCommand, connect, host_option
from protocol.errors import ChannelError, EndOfChannel, InvalidArgument
from protocol.messages import BuildImage, BuildOutput, BuildResult

# Registers the builder's and the image store's error codes for display by name.
from worker.build import errors as _build_errors  # noqa: F401
from worker.build.ignore import Pattern, is_ignored, parse_ignore
from worker.images import errors as _image_errors  # noqa: F401


def context_entries(root: Path, patterns: list[Pattern]) -> list[str]:
    """The context's paths to send (relative, sorted, parents before children)."""
    keep_looking = any(p.exclusion for p in patterns)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames.sort()
        kept_dirs = []
        for name in dirnames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not is_ignored(rel, patterns):
                found.append(rel)
                kept_dirs.append(name)
            elif keep_looking:
                kept_dirs.append(name)  # a ``!`` pattern may take something inside back
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not is_ignored(rel, patterns):
                found.append(rel)
    return found


def send_context(root: Path, patterns: list[Pattern], source: ByteSource) -> None:
    from cli.images import StreamSink  # cli.images adds `build` to its group: import late

    sink = StreamSink(source)
    try:
        with tarfile.open(fileobj=sink, mode="w|",  # type: ignore[call-overload]
                          format=tarfile.PAX_FORMAT) as tar:
            for rel in context_entries(root, patterns):
                info = tar.gettarinfo(str(root / rel), rel)
                info.uname = info.gname = ""
                if info.isreg():
                    with (root / rel).open("rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        sink.flush()
        source.close()
    except ChannelError:
        return  # the worker stopped reading: its reply says why
    except OSError as exc:
        source.abort(InvalidArgument(f"cannot read the context: {exc.strerror or exc}"))


def _build_args(given: tuple[str, ...]) -> dict[str, str]:
    args = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep:  # docker takes a bare name's value from the environment
            if key not in os.environ:
                continue
            value = os.environ[key]
        args[key] = value
    return args


def read_dockerfile(context: Path, dockerfile: str | None, hint: str) -> tuple[str, str]:
    """The Dockerfile's text and name: ``dockerfile`` as given (else relative to the
    context), or the context's ``Dockerfile``."""
    path = Path(dockerfile) if dockerfile else context / "Dockerfile"
    if dockerfile and not path.is_absolute() and not path.exists():
        path = context / dockerfile
    try:
        return path.read_text(), path.name
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}",
                                 param_hint=hint) from None


@dataclass(frozen=True)
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    platform: str = ""


def build_image(client: Client, context: Path, dockerfile: str, dockerfile_name: str,
                options: BuildOptions, *, quiet: bool = False) -> BuildResult:
    """Send the build and its context, print its output as it comes (unless ``quiet``), and
    return its result."""
    ignore = context / ".dockerignore"
    patterns = parse_ignore(ignore.read_text()) if ignore.is_file() else []
    session = client.session
    source = session.byte_source()
    reply = session.reply_inbox()
    session.send(BuildImage(dockerfile=dockerfile, dockerfile_name=dockerfile_name,
                            tags=options.tags, build_args=options.build_args,
                            target=options.target, no_cache=options.no_cache,
                            platform=options.platform, context=source, reply=reply))
    send_context(context, patterns, source)
    result: BuildResult | None = None
    try:
        while True:
            try:
                message = reply.recv()
            except EndOfChannel:
                break
            if isinstance(message, BuildOutput) and not quiet:
                sys.stdout.write(message.text)
                sys.stdout.flush()
            elif isinstance(message, BuildResult):
                result = message
    finally:
        reply.close()
    if result is None:
        raise click.ClickException("the worker ended the build without a result")
    return result


@click.command(cls=ShoalCommand)
@host_option
@click.option("-t", "--tag", "tags", multiple=True, help="Name the image NAME[:TAG].")
@click.option("-f", "--file", "dockerfile", default=None,
              help="The Dockerfile (default CONTEXT/Dockerfile; - for stdin).")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY[=VALUE]",
              help="A build argument (a bare KEY takes its value from the environment).")
@click.option("--target", default="", help="Build up to this stage.")
@click.option("--no-cache", is_flag=True, help="Run every step again.")
@click.option("--platform", default="", help="os/arch[/variant]: must be the worker's.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id.")
@click.argument("context", type=click.Path(exists=True, file_okay=False, path_type=Path))
def build(host: str | None, tags: tuple[str, ...], dockerfile: str | None,
          build_args: tuple[str, ...], target: str, no_cache: bool, platform: str,
          quiet: bool, context: Path) -> None:
    """Build an image from a Dockerfile and the CONTEXT directory."""
    if dockerfile == "-":
        text, name = sys.stdin.read(), "Dockerfile"
    else:
        text, name = read_dockerfile(context, dockerfile, "-f")
    with connect(host) as client:
        result = build_image(client, context, text, name, BuildOptions(
            tags=list(tags), build_args=_build_args(build_args), target=target,
            no_cache=no_cache, platform=platform), quiet=quiet)
    if quiet:
        click.echo(result.image.id)
