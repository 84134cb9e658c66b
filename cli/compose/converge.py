"""What ``up`` does to bring a service's containers to its file, decided without I/O: from the
specs the file asks for and the containers that exist (found by their compose labels), which
to keep, start, create, recreate or remove. A container whose config hash matches is left
alone, so an unchanged file changes nothing and an edited service is recreated alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cli.compose.translate import (
    HASH_LABEL,
    NUMBER_LABEL,
    ONEOFF_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
)
from protocol.observed import ContainerSummary
from protocol.specs import ContainerSpec

ActionKind = Literal["keep", "start", "create", "recreate", "remove"]


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    name: str  # the container's name, for messages
    old_id: str = ""  # the container to start, recreate or remove
    spec: ContainerSpec | None = None  # what to create (create, recreate)


def project_containers(containers: Sequence[ContainerSummary],
                       project: str) -> list[ContainerSummary]:
    return [c for c in containers if c.labels.get(PROJECT_LABEL) == project]


def of_service(containers: Sequence[ContainerSummary], service: str) -> list[ContainerSummary]:
    """The service's containers, not its one-offs (``compose run``), which up leaves alone."""
    return [c for c in containers if c.labels.get(SERVICE_LABEL) == service
            and c.labels.get(ONEOFF_LABEL) != "True"]


def plan_service(specs: Sequence[ContainerSpec], existing: Sequence[ContainerSummary], *,
                 force_recreate: bool = False) -> list[Action]:
    """The actions that bring ``existing`` (one service's containers) to ``specs`` (its
    replicas, numbered from 1 in order): removals of what is too many first, then each
    replica in turn."""
    by_number: dict[int, ContainerSummary] = {}
    actions: list[Action] = []
    for container in sorted(existing, key=lambda c: (c.created_at, c.id)):
        number = _number(container)
        if number is None or number > len(specs) or number in by_number:
            actions.append(Action("remove", container.name, old_id=container.id))
        else:
            by_number[number] = container
    for number, spec in enumerate(specs, start=1):
        current = by_number.get(number)
        if current is None:
            actions.append(Action("create", spec.name, spec=spec))
        elif force_recreate or current.labels.get(HASH_LABEL) != spec.labels.get(HASH_LABEL) \
                or current.name != spec.name:
            actions.append(Action("recreate", spec.name, old_id=current.id, spec=spec))
        elif current.state.status in ("running", "restarting"):
            actions.append(Action("keep", current.name, old_id=current.id))
        else:
            actions.append(Action("start", current.name, old_id=current.id))
    return actions


def orphans(containers: Sequence[ContainerSummary], services: Sequence[str]
            ) -> list[ContainerSummary]:
    """A project's containers whose service is not among ``services``."""
    return [c for c in containers if c.labels.get(SERVICE_LABEL) not in services]


def _number(container: ContainerSummary) -> int | None:
    text = container.labels.get(NUMBER_LABEL, "")
    return int(text) if text.isdigit() and int(text) > 0 else None
