"""``compose up`` and ``compose down``: the project's networks made (or removed), its services'
containers converged on the file in ``depends_on`` order (``converge`` decides, this module
sends), orphans reported or removed."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import click

from cli.arguments import key_values
from cli.client import Client, connect, one_line
from cli.compose.converge import Action, of_service, orphans, plan_service
from cli.compose.errors import ComposeError
from cli.compose.global_services import jobs_of, plain, remove_jobs, up_global
from cli.compose.images import prepare_images
from cli.compose.loader import start_order
from cli.compose.model import Project, Service, network_peer_service
from cli.compose.options import ProjectOptions, listed, pass_options, verb
from cli.compose.project_files import project_files, remove_files, write_files
from cli.compose.translate import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    check_project,
    container_name,
    is_global,
    network_specs,
    service_specs,
    volume_name,
    volume_specs,
)
from cli.compose.waiting import (
    CLUSTER_SETTLE_TIMEOUT,
    RUNNING_OR_HEALTHY,
    Condition,
    Deadline,
    until_not_in_use,
    wait_for,
)
from protocol.errors import NotFound, ShoalError
from protocol.messages import (
    ContainerCreated,
    CreateContainers,
    CreateNetwork,
    CreateVolume,
    GetVersion,
    ListNetworks,
    ListVolumes,
    Message,
    NetworkCreated,
    NetworkList,
    RemoveContainer,
    RemoveNetwork,
    RemoveVolume,
    RestartContainer,
    StartContainer,
    StopContainer,
    Submitted,
    VersionInfo,
    VolumeInspected,
    VolumeList,
)
from protocol.observed import ContainerSummary
from protocol.refs import SenderRef
from protocol.specs import ContainerSpec, NetworkSpec, VolumeSpec


@verb
@click.option("-d", "--detach", is_flag=True, help="Leave the containers running; without "
                                                   "it, follow their logs and stop them at "
                                                   "Ctrl-C.")
@click.option("--scale", multiple=True, metavar="SERVICE=N",
              help="Run N containers of SERVICE (instead of the file's replicas).")
@click.option("--force-recreate", is_flag=True, help="Recreate containers even if unchanged.")
@click.option("--no-deps", is_flag=True, help="Leave the named services' dependencies alone.")
@click.option("--remove-orphans", is_flag=True,
              help="Remove containers of services the file no longer has.")
@click.option("--wait", is_flag=True, help="Wait until every container runs, healthy when it "
                                           "has a healthcheck (implies -d).")
@click.option("--wait-timeout", type=click.FloatRange(0, 86400), default=None,
              metavar="SECONDS", help="Give up after this long (the dependencies' waits "
                                      "too), exit 1.")
@click.option("--build", is_flag=True, help="Build the images of services with a build "
                                             "section first.")
@click.option("--pull", type=click.Choice(["always", "missing", "never"]), default=None,
              help="Pull images before creating (default: each service's pull_policy, "
                   "missing unless it says otherwise).")
@click.argument("services", nargs=-1)
@pass_options
def up(options: ProjectOptions, detach: bool, scale: tuple[str, ...], force_recreate: bool,
       no_deps: bool, remove_orphans: bool, wait: bool, wait_timeout: float | None,
       build: bool, pull: str | None, services: tuple[str, ...]) -> None:
    """Create and start the services' containers; an unchanged one is left alone. A
    dependant starts once its dependencies meet their depends_on condition (started,
    healthy, or exited 0)."""
    project = options.load(services)
    order = start_order(project, services, with_dependencies=not no_deps)
    project = _scaled(project, key_values(scale, "scale", "--scale"))
    deadline = Deadline(wait_timeout)
    failed = False
    with connect(options.host) as client:
        cluster = on_cluster(client)
        check_project(project, order, cluster=cluster)
        existing = listed(client, project.name)
        prepare_images(client, project, order, build=build, pull=pull or "",
                       present={c.image for c in existing})
        _ensure_networks(client, network_specs(project, order, overlay=cluster))
        _ensure_volumes(client, volume_specs(project, order), cluster)
        write_files(project_files(project, order))
        stray = [c for c in orphans(existing, list(project.services) + list(project.disabled))]
        if remove_orphans:
            remove_jobs(client, jobs_of(stray))
            for container in plain(stray):
                _remove(client, container.id, container.name, "Removed")
        for container in stray if not remove_orphans else []:
            click.echo(f"WARNING: found orphan container {container.name} (service "
                       f"{container.labels.get('com.docker.compose.service')}); "
                       "--remove-orphans removes it", err=True)
        global_jobs = {name for name in order if cluster and is_global(project.services[name])}
        # A service whose mode changed: what the other mode made goes first.
        failed = remove_jobs(client, jobs_of([c for name in order if name not in global_jobs
                                               for c in of_service(existing, name)])) > 0
        for name in global_jobs:
            for container in plain(of_service(existing, name)):
                _remove(client, container.id, container.name, "Removed")
        planned: dict[str, list[Action]] = {}
        for name in order:  # a service's network peer is planned before it (a dependency)
            if name in global_jobs:
                continue
            planned[name] = plan_service(
                service_specs(project, project.services[name], cluster=cluster),
                plain(of_service(existing, name)),
                force_recreate=force_recreate or _peer_made_anew(project, name, planned))
        plans = _create_together(client, planned) if cluster else planned
        made: dict[str, list[tuple[str, str]]] = {}  # service: (container id, name) each
        updated: set[str] = set()  # services whose containers this up recreated or restarted
        for name in order if plans is not None else ():
            service = project.services[name]
            if not _dependencies_met(client, cluster, service, made, existing, deadline):
                failed = True
                break  # a dependant does not start after its dependency failed
            if name in global_jobs:
                [spec] = service_specs(project, service, cluster=True)
                containers = up_global(client, spec, of_service(existing, name))
                failed = containers is None
                if failed:
                    break
                made[name] = containers or []
                continue
            actions = plans[name] if plans is not None else []
            made[name] = []
            # depends_on restart: true: a dependency this up recreated (or restarted so)
            # restarts the containers kept here.
            restart = any(d.restart and d.service in updated for d in service.depends_on)
            if restart or any(action.kind == "recreate" for action in actions):
                updated.add(name)
            for action in actions:
                container_id = _restart(client, action) if restart and action.kind == "keep" \
                    else _carry_out(client, action)
                if container_id is None:
                    failed = True
                elif action.kind != "remove":
                    made[name].append((container_id, action.name))
            if failed:
                break
        failed = failed or plans is None
        if wait and not failed:
            # A service others wait to complete was waited for already: it has exited.
            one_shot = {d.service for s in project.services.values() for d in s.depends_on
                        if d.condition == "service_completed_successfully"}
            failed = not _all_ready(client, cluster, {k: v for k, v in made.items()
                                                      if k not in one_shot}, deadline)
    if failed:
        sys.exit(1)
    if not detach and not wait:
        from cli.compose.logs import follow_then_stop

        follow_then_stop(options, project, order)


def _peer_made_anew(project: Project, name: str, planned: dict[str, list[Action]]) -> bool:
    """Whether the container whose network service ``name`` joins (``network_mode:
    service:X``, X's first) is created or recreated by this up: then the service's
    containers are recreated too, as compose does (they would keep the old namespace)."""
    peer = network_peer_service(project.services[name].config)
    if not peer or peer not in planned:
        return False
    first = container_name(project, project.services[peer], 1)
    return any(a.kind in ("create", "recreate") and a.name == first for a in planned[peer])


ALL_OR_NOTHING = "nothing created (all or nothing): "  # the scheduler's words, said once


def _create_together(client: Client, plans: dict[str, list[Action]]
                     ) -> dict[str, list[Action]] | None:
    """Through a scheduler, every container this ``up`` makes afresh is created at once, all
    placed or none (``CreateContainers``), so that an app that does not fit leaves nothing
    behind; the plans with those creations turned into starts, or None when the app cannot
    be placed (one explanation printed, naming the service and why). Recreations go one by
    one, in order, as before (each replaces a container of the same name)."""
    fresh = [action for actions in plans.values() for action in actions
             if action.kind == "create" and action.spec is not None]
    if not fresh:
        return plans
    from cli.registry_access import cluster_pull_access  # loaded only when something is made

    specs = [action.spec for action in fresh if action.spec is not None]
    registries = [cluster_pull_access(client, spec.image, scheduler=True) for spec in specs]
    try:
        created = client.ask(lambda r: CreateContainers(specs=specs, registries=registries,
                                                        reply=r), Submitted)
    except ShoalError as exc:
        refused = str(exc.details.get("refused", "")).split(",")[0]
        service = next((spec.labels.get(SERVICE_LABEL, "") for spec in specs
                        if spec.name == refused), "")
        why = " ".join(str(exc).split()).removeprefix(ALL_OR_NOTHING)
        where = f"service {service} cannot be placed, so nothing was created" if service \
            else f"nothing was created: {type(exc).__name__}"
        click.echo(f"Error: {where}: {why}", err=True)
        return None
    ids = dict(zip([action.name for action in fresh], created.ids, strict=True))
    for action in fresh:
        click.echo(f"Container {action.name}  Created")
    return {name: [Action("start", action.name, old_id=ids[action.name])
                   if action.kind == "create" and action.name in ids else action
                   for action in actions] for name, actions in plans.items()}


def on_cluster(client: Client) -> bool:
    """Whether the service is a scheduler (a cluster), not a standalone worker."""
    return client.ask(lambda r: GetVersion(reply=r), VersionInfo).component == "scheduler"


def _dependencies_met(client: Client, cluster: bool, service: Service,
                      made: dict[str, list[tuple[str, str]]],
                      existing: list[ContainerSummary], deadline: Deadline) -> bool:
    """Wait for each dependency's containers to meet its condition (those this ``up`` made,
    else those that exist: with --no-deps, or a dependency not asked for)."""
    for dependency in service.depends_on:
        if dependency.condition == "service_started":
            continue  # its containers were started before this one, in order
        condition: Condition = "healthy" if dependency.condition == "service_healthy" \
            else "completed"
        containers = made.get(dependency.service)
        if containers is None:
            containers = [(c.id, c.name) for c in of_service(existing, dependency.service)]
        if not containers and dependency.required:
            click.echo(f"Error: {service.name} depends on {dependency.service}, which has no "
                       "container", err=True)
            return False
        for container_id, name in containers:
            click.echo(f"Container {name}  Waiting")
            why = wait_for(client, cluster, container_id, name, condition, deadline)
            if why:
                click.echo(f"Error: dependency failed to start: {why}", err=True)
                return False
            click.echo(f"Container {name}  "
                       f"{'Healthy' if condition == 'healthy' else 'Exited'}")
    return True


def _all_ready(client: Client, cluster: bool, made: dict[str, list[tuple[str, str]]],
               deadline: Deadline) -> bool:
    """up --wait: every container running, healthy when it has a healthcheck."""
    ready = True
    for containers in made.values():
        for container_id, name in containers:
            why = wait_for(client, cluster, container_id, name, RUNNING_OR_HEALTHY, deadline)
            if why:
                click.echo(f"Error: {why}", err=True)
                ready = False
            else:
                click.echo(f"Container {name}  Healthy")
    return ready


def _scaled(project: Project, scale: dict[str, str]) -> Project:
    """``project`` with ``--scale`` applied to its services' replica counts."""
    from dataclasses import replace

    services = dict(project.services)
    for name, count in scale.items():
        if name not in services:
            raise ComposeError("", 0, (), f"--scale: no such service {name!r}")
        if not count.isdigit():
            raise click.BadParameter(f"{name}={count}: expected a number", param_hint="--scale")
        if is_global(services[name]):
            raise ComposeError("", 0, (), f"--scale: {name} is global: it runs one container "
                                          "on every eligible node")
        services[name] = replace(services[name], replicas=int(count))
    return replace(project, services=services)


def _ensure_networks(client: Client, wanted: dict[str, NetworkSpec | None]) -> None:
    if not wanted:
        return
    have = {n.spec.name for n in client.ask(lambda r: ListNetworks(reply=r),
                                            NetworkList).networks}
    for name, spec in wanted.items():
        if name in have or name in ("none", "host", "bridge"):
            continue
        if spec is None:
            raise ComposeError("", 0, (), f"network {name} is declared external, but it does "
                                          "not exist: shoal network create it first")
        client.ask(lambda r, s=spec: CreateNetwork(spec=s, reply=r),  # type: ignore[misc]
                   NetworkCreated)
        click.echo(f"Network {name}  Created")


def _restart(client: Client, action: Action) -> str | None:
    """A kept container restarted (its dependency changed): its id, or None when refused."""
    try:
        client.ask(lambda r: RestartContainer(id=action.old_id, reply=r), Message)
    except ShoalError as exc:
        click.echo(f"Error: {action.name}: {one_line(exc)}", err=True)
        return None
    click.echo(f"Container {action.name}  Restarted")
    return action.old_id


def _carry_out(client: Client, action: Action) -> str | None:
    """Send what ``action`` needs: the container's id ("" for a removal), or None (with the
    reason printed) when refused."""
    try:
        if action.kind == "keep":
            click.echo(f"Container {action.name}  Running")
            return action.old_id
        if action.kind == "start":
            client.ask(lambda r: StartContainer(id=action.old_id, reply=r), Message)
            click.echo(f"Container {action.name}  Started")
            return action.old_id
        if action.kind == "remove":
            _remove(client, action.old_id, action.name, "Removed")
            return ""
        if action.kind == "recreate":
            _remove(client, action.old_id, action.name, "Recreate")
        spec = action.spec
        assert spec is not None
        created = _create(client, spec)
        click.echo(f"Container {action.name}  "
                   f"{'Recreated' if action.kind == 'recreate' else 'Created'}")
        client.ask(lambda r: StartContainer(id=created.id, reply=r), Message)
        click.echo(f"Container {action.name}  Started")
        return created.id
    except ShoalError as exc:
        click.echo(f"Error: {action.name}: {one_line(exc)}", err=True)
        return None


def _ensure_volumes(client: Client, wanted: dict[str, VolumeSpec | None],
                    cluster: bool) -> None:
    """Make the project's named volumes. Through a scheduler of several nodes a volume without
    ``driver_opts`` is left to its first container: it is made on the node that container is
    placed on, and pins the service there (with options it must be made first, and the
    scheduler refuses to choose a node for it)."""
    if not wanted:
        return
    have = {v.spec.name for v in client.ask(lambda r: ListVolumes(reply=r),
                                            VolumeList).volumes}
    for name, spec in wanted.items():
        if name in have:
            continue
        if spec is None:
            raise ComposeError("", 0, (), f"volume {name} is declared external, but it does "
                                          "not exist: shoal volume create it first")
        if cluster and not spec.options:
            continue
        client.ask(lambda r, s=spec: CreateVolume(spec=s, reply=r),  # type: ignore[misc]
                   VolumeInspected)
        click.echo(f"Volume {name}  Created")


def _create(client: Client, spec: ContainerSpec) -> ContainerCreated:
    """Create as ``run`` does: a worker that lacks the image pulls it first; a scheduler's
    worker brings it, with the registry access of the user's login."""
    from cli.running import create_pulling  # the run verbs load only when a service is made

    return create_pulling(client, spec)


def ask_all(client: Client, requests: list[Callable[[SenderRef], Message]]
            ) -> list[ShoalError | None]:
    """Send every request before reading any answer, so the service works on them together;
    each one's refusal, or None. (The session is the leader's by now: the listing before went
    through ``Client.ask``, which follows a standby's redirect.)"""
    session = client.session
    inboxes = []
    for make in requests:
        inbox = session.reply_inbox()
        session.send(make(inbox))
        inboxes.append(inbox)
    answers: list[ShoalError | None] = []
    for inbox in inboxes:
        try:
            inbox.recv()
            answers.append(None)
        except ShoalError as exc:
            answers.append(exc)
        finally:
            inbox.close()
    return answers


def _remove(client: Client, container_id: str, name: str, said: str) -> None:
    """Stop (with the container's own grace time), then remove."""
    try:
        client.ask(lambda r: StopContainer(id=container_id, reply=r), Message)
    except NotFound:
        return
    except ShoalError:
        pass  # a stopped one refuses to stop on some drivers: rm -f below settles it
    client.ask(lambda r: RemoveContainer(id=container_id, force=True, reply=r), Message)
    click.echo(f"Container {name}  {said}")


@verb
@click.option("-v", "--volumes", is_flag=True,
              help="Also remove the project's named volumes (not the external ones).")
@click.option("--remove-orphans", is_flag=True,
              help="Also remove containers of services the file no longer has.")
@pass_options
def down(options: ProjectOptions, volumes: bool, remove_orphans: bool) -> None:
    """Stop and remove the project's containers and the networks it made (with -p alone and
    no file, every container and network labelled with the project)."""
    name = options.name_only()
    project = options.load() if options.has_files() else None
    failures = 0
    with connect(options.host) as client:
        existing = listed(client, name)
        known = list(project.services) + list(project.disabled) if project is not None \
            else [c.labels.get("com.docker.compose.service", "") for c in existing]
        doomed: list[ContainerSummary] = [c for c in existing if c not in orphans(existing, known)]
        if remove_orphans:
            doomed = existing
        elif len(doomed) < len(existing):
            click.echo(f"WARNING: {len(existing) - len(doomed)} orphan container(s) left; "
                       "--remove-orphans removes them", err=True)
        # All stopped at once (each waits out its own grace time), then all removed; a
        # global job's containers go with their job.
        ask_all(client, [lambda r, c=c.id: StopContainer(id=c, reply=r)  # type: ignore[misc]
                         for c in doomed])
        failures += remove_jobs(client, jobs_of(doomed))
        doomed = plain(doomed)
        refused = ask_all(client, [
            lambda r, c=c.id: RemoveContainer(id=c, force=True, reply=r)  # type: ignore[misc]
            for c in doomed])
        for container, error in zip(doomed, refused, strict=True):
            if error is None or isinstance(error, NotFound):
                click.echo(f"Container {container.name}  Removed")
            else:
                failures += 1
                click.echo(f"Error: {container.name}: {one_line(error)}", err=True)
        # Through a scheduler, a removed container may hold its network and volumes on its
        # worker a moment longer: their removals are tried again while refused as in use.
        settle = CLUSTER_SETTLE_TIMEOUT if on_cluster(client) else 0.0
        networks = client.ask(lambda r: ListNetworks(reply=r), NetworkList).networks
        for network in networks:
            if network.spec.labels.get(PROJECT_LABEL) != name:
                continue
            try:
                until_not_in_use(client, lambda n=network.spec.name: client.ask(  # type: ignore[misc]
                    lambda r: RemoveNetwork(name=n, reply=r), Message), settle)
                click.echo(f"Network {network.spec.name}  Removed")
            except ShoalError as exc:
                failures += 1
                click.echo(f"Error: network {network.spec.name}: {one_line(exc)}", err=True)
        if volumes:
            failures += _remove_volumes(client, name, project, settle)
    remove_files(name, project.environment if project is not None else os.environ)
    if failures:
        sys.exit(1)


def _remove_volumes(client: Client, name: str, project: Project | None, settle: float) -> int:
    """Remove the project's volumes: those labelled with it, and those its file names (a
    volume a cluster made on first use has no labels); the number refused. Each removal is
    tried again for ``settle`` seconds while refused as in use."""
    named = {volume_name(project, key) for key, config in project.volumes.items()
             if not (config or {}).get("external")} if project is not None else set()
    failures = 0
    for info in client.ask(lambda r: ListVolumes(reply=r), VolumeList).volumes:
        if info.spec.labels.get(PROJECT_LABEL) != name and info.spec.name not in named:
            continue
        try:
            until_not_in_use(client, lambda i=info: client.ask(  # type: ignore[misc]
                lambda r: RemoveVolume(name=i.spec.name, node_id=i.node_id, reply=r),
                Message), settle)
            click.echo(f"Volume {info.spec.name}  Removed")
        except ShoalError as exc:
            failures += 1
            click.echo(f"Error: volume {info.spec.name}: {one_line(exc)}", err=True)
    return failures
