"""Compose's global services (``deploy.mode: global``) through a scheduler: each is a global job
named ``<project>-<service>``, one container ``<project>-<service>.NODE`` on every eligible
node, now and as nodes join or leave (Swarm's global service). ``up`` submits the job (the same
spec again changes nothing; a changed one replaces every container); ``down`` and
``--remove-orphans`` remove the job by its name, which its containers carry in ``JOB_LABEL``
(a job's container is not removed alone: the job would make it again)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from cli.client import Client, one_line
from cli.compose.translate import HASH_LABEL
from protocol.errors import NotFound, ShoalError
from protocol.messages import Message, RemoveContainer, SubmitJob, Submitted
from protocol.observed import ContainerSummary
from protocol.specs import JOB_LABEL, ContainerSpec


def up_global(client: Client, spec: ContainerSpec, existing: Sequence[ContainerSummary]
              ) -> list[tuple[str, str]] | None:
    """Submit the service's job; its containers (id, name) as placed now, or None (with the
    reason printed) when refused. A container that waits for room on its node is said so."""
    from cli.registry_access import cluster_pull_access  # loaded only when something is made

    before = {c.name: c.labels.get(HASH_LABEL) for c in existing}
    registry = cluster_pull_access(client, spec.image, scheduler=True)
    try:
        submitted = client.ask(lambda r: SubmitJob(spec=spec, mode="global", registry=registry,
                                                   reply=r), Submitted)
    except ShoalError as exc:
        click.echo(f"Error: {spec.name}: {one_line(exc)}", err=True)
        return None
    for cid in submitted.ids:
        same = before.get(cid) == spec.labels.get(HASH_LABEL)
        click.echo(f"Container {cid}  {'Running' if same else 'Started'}")
    if submitted.refused:
        click.echo(f"WARNING: {spec.name}: {submitted.refused}", err=True)
    return [(cid, cid) for cid in submitted.ids]


def jobs_of(containers: Sequence[ContainerSummary]) -> dict[str, list[str]]:
    """The global jobs ``containers`` belong to, each with its containers' names."""
    jobs: dict[str, list[str]] = {}
    for container in containers:
        job = container.labels.get(JOB_LABEL)
        if job is not None:
            jobs.setdefault(job, []).append(container.name)
    return jobs


def plain(containers: Sequence[ContainerSummary]) -> list[ContainerSummary]:
    """Those of ``containers`` that are no global job's."""
    return [c for c in containers if JOB_LABEL not in c.labels]


def remove_jobs(client: Client, jobs: dict[str, list[str]]) -> int:
    """Remove each job (and so its containers); the number refused (each said)."""
    failures = 0
    for job, names in jobs.items():
        try:
            client.ask(lambda r, j=job: RemoveContainer(id=j, reply=r), Message)  # type: ignore[misc]
        except NotFound:
            pass
        except ShoalError as exc:
            failures += 1
            click.echo(f"Error: {job}: {one_line(exc)}", err=True)
            continue
        for name in names:
            click.echo(f"Container {name}  Removed")
    return failures
