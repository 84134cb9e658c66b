"""A project's images: services with ``build`` built through the build verb (``up --build``,
``compose build``), images pulled or pushed through the registry client (``up --pull``, the
services' ``pull_policy``, ``compose pull``, ``compose push``), and ``compose images``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from cli.client import Client, connect, one_line
from cli.compose.model import Project, Service
from cli.compose.options import ProjectOptions, listed, pass_options, selected, verb
from cli.compose.translate import SERVICE_LABEL, image_name
from protocol.errors import ShoalError
from protocol.messages import ImageInspected, InspectImage


def build_service(client: Client, project: Project, service: Service, *,
                  no_cache: bool = False, quiet: bool = False) -> None:
    """Build the service's image from its ``build`` (context, dockerfile, args, target),
    tagged with its image name."""
    from cli.build import BuildOptions, build_image, read_dockerfile

    config = service.config["build"]
    context = Path(config.get("context", "."))
    text, name = read_dockerfile(context, config.get("dockerfile"), "build.dockerfile")
    image = image_name(project, service)
    click.echo(f"Building {service.name} ({image})", err=quiet)
    build_image(client, context, text, name, BuildOptions(
        tags=[image], build_args=_build_args(config.get("args")), target=config.get(
            "target", ""), no_cache=no_cache), quiet=quiet)
    click.echo(f"Image {image}  Built", err=quiet)


def _build_args(args: object) -> dict[str, str]:
    """Compose's ``args``: a mapping or ``KEY=VALUE`` lines; a key without a value takes the
    environment's (and is left out when it has none), as compose does."""
    pairs: list[tuple[str, str | None]] = []
    if isinstance(args, dict):
        pairs = [(str(k), None if v is None else str(v)) for k, v in args.items()]
    elif isinstance(args, list):
        for item in args:
            key, sep, text = str(item).partition("=")
            pairs.append((key, text if sep else None))
    found: dict[str, str] = {}
    for key, given in pairs:
        value = os.environ.get(key) if given is None else given
        if value is not None:
            found[key] = value
    return found


def has_image(client: Client, ref: str) -> bool:
    from worker.images.errors import ImageNotFound

    try:
        client.ask(lambda r: InspectImage(ref=ref, reply=r), ImageInspected)
    except ImageNotFound:
        return False
    return True


def prepare_images(client: Client, project: Project, services: list[str], *, build: bool,
                   pull: str, present: set[str]) -> None:
    """Before ``up`` creates anything: build what is to be built (``--build``, pull_policy
    build, or a built image that does not exist yet), pull what is to be pulled (``--pull``
    over each service's ``pull_policy``: always, or missing when the store lacks it).
    ``present``: images known to exist (the project's containers use them), which a no-change
    ``up`` need not ask about."""

    def missing(image: str) -> bool:
        if image not in present:
            if has_image(client, image):
                present.add(image)
            else:
                return True
        return False

    for name in services:
        service = project.services[name]
        policy = pull or str(service.config.get("pull_policy", "missing"))
        image = image_name(project, service)
        if "build" in service.config:
            if build or policy == "build" or missing(image):
                build_service(client, project, service)
                present.add(image)
            continue
        if policy == "always" or (policy in ("missing", "if_not_present") and missing(image)):
            # Loaded only for a pull: a no-change up needs none (its imports cost ~25 ms).
            from cli.registry import pull_image

            pull_image(client, image, err=True)
            present.add(image)


@verb
@click.option("--no-cache", is_flag=True, help="Run every step again.")
@click.option("-q", "--quiet", is_flag=True, help="Only the errors.")
@click.argument("services", nargs=-1)
@pass_options
def build(options: ProjectOptions, no_cache: bool, quiet: bool,
          services: tuple[str, ...]) -> None:
    """Build the images of the services that have a build section."""
    project = options.load(services)
    with connect(options.host) as client:
        for name in services or sorted(project.services):
            service = project.services[name]
            if "build" in service.config:
                build_service(client, project, service, no_cache=no_cache, quiet=quiet)


@verb
@click.option("-q", "--quiet", is_flag=True, help="No progress.")
@click.option("--ignore-buildable", is_flag=True,
              help="Leave out the services that have a build section.")
@click.argument("services", nargs=-1)
@pass_options
def pull(options: ProjectOptions, quiet: bool, ignore_buildable: bool,
         services: tuple[str, ...]) -> None:
    """Pull the services' images (those with pull_policy never or build are left out)."""
    from cli.registry import pull_image

    project = options.load(services)
    failures = 0
    with connect(options.host) as client:
        for name in services or sorted(project.services):
            service = project.services[name]
            if service.config.get("pull_policy") in ("never", "build") or \
                    ("build" in service.config and (ignore_buildable or not service.image)):
                continue
            try:
                pull_image(client, image_name(project, service), quiet=quiet, err=True)
            except ShoalError as exc:
                failures += 1
                click.echo(f"Error: {name}: {one_line(exc)}", err=True)
    if failures:
        sys.exit(1)


@verb
@click.option("-q", "--quiet", is_flag=True, help="No progress.")
@click.argument("services", nargs=-1)
@pass_options
def push(options: ProjectOptions, quiet: bool, services: tuple[str, ...]) -> None:
    """Push the images of the services that have a build section and an image name."""
    from cli.registry import push_image

    project = options.load(services)
    with connect(options.host) as client:
        for name in services or sorted(project.services):
            service = project.services[name]
            if "build" in service.config and service.image:
                push_image(client, service.image, quiet=quiet)


@verb
@click.option("-q", "--quiet", is_flag=True, help="Only the image ids.")
@click.argument("services", nargs=-1)
@pass_options
def images(options: ProjectOptions, quiet: bool, services: tuple[str, ...]) -> None:
    """List the images the project's containers use."""
    from cli.output import table

    name = options.name_only()
    with connect(options.host) as client:
        containers = selected(listed(client, name), services)
        rows = []
        for container in sorted(containers, key=lambda c: c.name):
            info = client.ask(lambda r, i=container.image: InspectImage(  # type: ignore[misc]
                ref=i, reply=r), ImageInspected).info.summary
            repository, _, tag = container.image.rpartition(":") if ":" in \
                container.image.rsplit("/", 1)[-1] else (container.image, "", "latest")
            rows.append([container.name, container.labels.get(SERVICE_LABEL, ""),
                         repository, tag, info.id.removeprefix("sha256:")[:12],
                         f"{info.size / 1e6:.3g}MB"])
    if quiet:
        for row in dict.fromkeys(r[4] for r in rows):
            click.echo(row)
        return
    table(["CONTAINER", "SERVICE", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"], rows)
