"""What every ``shoal compose`` verb shares: the project options (``-f``, ``-p``,
``--env-file``, ``--profile``, ``-H``) and how a verb loads the project or finds its
containers (by their compose labels)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from cli.client import Client, ShoalCommand
from cli.compose.errors import ComposeError
from cli.compose.model import Project
from cli.compose.translate import SERVICE_LABEL
from protocol.messages import ContainerList, ListContainers
from protocol.observed import ContainerSummary


@dataclass(frozen=True)
class ProjectOptions:
    files: tuple[str, ...]
    project_name: str
    env_files: tuple[str, ...]
    profiles: tuple[str, ...]
    host: str | None

    def load(self, targets: Sequence[str] = ()) -> Project:
        from cli.compose.sources import load

        return load(self.files, self.project_name, self.profiles, self.env_files, targets)

    def has_files(self) -> bool:
        """Whether there is a file to read: -f, COMPOSE_FILE, or a default file here or
        above; with -p or COMPOSE_PROJECT_NAME, a verb may do without (``down -p x``)."""
        import os

        if self.files or os.environ.get("COMPOSE_FILE") or not self._explicit_name():
            return True
        from cli.compose.sources import compose_files

        try:
            compose_files([], os.environ, os.getcwd())
        except ComposeError:
            return False
        return True

    def _explicit_name(self) -> str:
        import os

        return self.project_name or os.environ.get("COMPOSE_PROJECT_NAME", "")

    def name_only(self) -> str:
        """The project's name, without reading its files when -p or COMPOSE_PROJECT_NAME
        gives it and there are none (``down -p x`` works without the file, as in compose)."""
        if not self.has_files():
            from cli.compose.loader import project_name

            return project_name(self._explicit_name(), "", "")
        return self.load().name


class ComposeCommand(ShoalCommand):
    """A compose verb: a problem with the files is printed as its lines, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ComposeError as exc:
            raise click.ClickException(str(exc)) from None


pass_options = click.make_pass_decorator(ProjectOptions)
def verb(function: Callable[..., None]) -> click.Command:
    """A compose verb. A fresh decorator for each: click's keeps the first docstring it saw
    in its shared attributes, which would give every verb the same help."""
    return click.command(cls=ComposeCommand)(function)


def verb_with_argv(function: Callable[..., None]) -> click.Command:
    """A compose verb whose arguments after the service are a command (``exec web ls -l``)."""
    return click.command(cls=ComposeCommand,
                         context_settings={"allow_interspersed_args": False})(function)


def listed(client: Client, project: str) -> list[ContainerSummary]:
    """The project's containers, stopped ones too."""
    from cli.compose.converge import project_containers

    listing = client.ask(lambda r: ListContainers(all=True, reply=r), ContainerList)
    return project_containers(listing.containers, project)


def selected(containers: list[ContainerSummary], services: Sequence[str]
              ) -> list[ContainerSummary]:
    if not services:
        return containers
    return [c for c in containers if c.labels.get(SERVICE_LABEL) in services]


def project_of_services(options: ProjectOptions, services: Sequence[str]) -> str:
    """The project's name; named services are checked against its file when there is one."""
    if not services:
        return options.name_only()
    project = options.load(services)
    unknown = [s for s in services if s not in project.services]
    if unknown:
        raise ComposeError("", 0, (), f"no such service: {', '.join(unknown)}")
    return project.name
