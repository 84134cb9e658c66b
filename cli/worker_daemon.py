"""``shoal worker``: run a worker, standalone or joined to schedulers with ``--join``.

A joined worker tells the schedulers where it serves its verbs: the ``--listen`` address, or
``--advertise`` (needed with a wildcard ``--listen``, which nobody can reach by that name).
With ``--ready-fd N`` it writes ``READY=1`` and ``LISTEN=ADDR`` to that descriptor once joined
(or, alone, serving), then closes it. With ``--metrics HOST:PORT`` it serves Prometheus metrics
at ``/metrics`` there (``METRICS`` in the notification: the bound address, port 0 resolved).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import click

from channels.credentials import HAS_LOCAL_SOCKET, default_ipc_path
from cli.arguments import (
    advertise_option,
    insecure_option,
    ipc_option,
    key_values,
    parse_memory,
    require_advertise,
    warn_insecure,
)
from cli.docker_api import docker_api_options, docker_listen
from cli.metrics_endpoint import MetricsEndpoint, metrics_option
from cli.readiness import ReadyNotifier, notifier_option
from dockerapi.address import DockerListen
from dockerapi.server import DockerApiServer
from protocol.addresses import DEFAULT_WORKER
from protocol.errors import ShoalError
from protocol.platforms import canonical, validate
from protocol.specs import Platform
from worker.daemon import default_state_dir, run_worker
from worker.hostos import HOST
from worker.images import LayerLimits
from worker.metrics import WorkerMetrics


@click.command("worker")
@click.option("--listen", default=DEFAULT_WORKER, show_default=True,
              help="Address to serve the container verbs on.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where containers, logs and state live (default: /var/lib/shoal/worker "
                   "as root).")
@click.option("--driver", type=click.Choice(["auto", "native", "process"]), default="auto",
              show_default=True, help="How containers run.")
@click.option("--join", default="", help="Schedulers to join (tcp://A:P[,tcp://B:P]); "
              "without it the worker stands alone.")
@advertise_option("With --join: where the schedulers and other hosts reach this worker: "
                  "tcp://HOST:PORT, tcp://HOST or HOST (the listener's port); needed with a "
                  "wildcard --listen (default: the listen address).")
@click.option("--name", default="", help="Node id in the cluster (default: host name).")
@click.option("--label", "labels", multiple=True, help="Node label KEY=VALUE (repeatable).")
@click.option("--log-max-size", default="0", show_default=True,
              help="Rotate a container's json-file log at this size (e.g. 10m; 0: never).")
@click.option("--log-max-file", type=click.IntRange(1, 100), default=1, show_default=True,
              help="How many log files to keep per container when rotating.")
@click.option("--image-limits", default="", metavar="KEY=VALUE[,...]",
              help="Bounds on the images it imports or fetches: layer (unpacked size of one "
                   "layer, default 8g), file (one file, 4g), image (all layers, 16g), entries "
                   "(per layer, 500000), ratio (unpacked/stored, 100), e.g. "
                   "layer=2g,ratio=50.")
@click.option("--ready-fd", "ready", type=click.IntRange(min=0), default=None, metavar="N",
              callback=notifier_option,
              help="Once joined (or, without --join, serving), write READY=1 and "
                   "LISTEN=ADDR to this inherited descriptor, then close it.")
@metrics_option
@click.option("--token", default="", envvar="SHOAL_JOIN_TOKEN", metavar="TOKEN",
              help="With --join: the worker token (shoal join-token worker on a manager) that "
                   "enrolls this worker's key the first time ($SHOAL_JOIN_TOKEN).")
@click.option("--resolv-conf", type=click.Path(dir_okay=False, path_type=Path),
              default="/etc/resolv.conf", show_default=True,
              help="The host's resolvers: where the containers' resolvers (127.0.0.11) "
                   "forward the names they do not know.")
@click.option("--platform-override", default="", metavar="OS/ARCH",
              help="Tests only (refused unless SHOAL_TEST_PLATFORM_OVERRIDE=1): report and "
                   "accept OS/ARCH instead of this host's platform, so a Linux process-driver "
                   "worker stands in for e.g. a windows/amd64 one in a mixed-cluster test.")
@insecure_option("worker")
@ipc_option("STATE_DIR/shoal.sock; none on Windows")
@docker_api_options
def worker_command(listen: str, state_dir: Path | None, driver: str, join: str,
                   advertise: str, name: str, labels: tuple[str, ...], log_max_size: str,
                   log_max_file: int, image_limits: str, ready: ReadyNotifier | None,
                   metrics_at: tuple[str, int] | None, token: str, insecure: bool,
                   ipc: str, resolv_conf: Path, docker_api: str,
                   docker_tlscacert: Path | None, docker_tlscert: Path | None,
                   docker_tlskey: Path | None, platform_override: str) -> None:
    """Run a worker: standalone, or part of a cluster with --join.

    Its tcp listener uses CURVE with the keys in STATE_DIR/auth; it joins with --token the
    first time. Root on this host reaches it through the root-only --ipc socket.

    Stopping the worker leaves its containers running (they are found again at its next
    start). To stop everything on a host for good, remove the containers first (shoal rm -f
    $(shoal ps -aq)), then stop the worker: its runtime helper exits by itself once it has
    neither containers nor a worker."""
    label_map = key_values(labels, "label", "--label")
    if insecure and token:
        raise click.UsageError("--token enrolls a CURVE key; --insecure uses none: give one")
    if token and not join:
        raise click.UsageError("--token is for joining a cluster: give --join too")
    if insecure:
        warn_insecure("worker", listen)
    override = platform_override_for_tests(platform_override)
    directory = state_dir or default_state_dir()
    docker = docker_listen(docker_api, directory, docker_tlscacert, docker_tlscert,
                           docker_tlskey, insecure, ipc)
    if ipc == "":
        ipc = str(default_ipc_path(directory)) if HAS_LOCAL_SOCKET else ""
    elif ipc == "none":
        ipc = ""
    schedulers = [a.strip() for a in join.split(",") if a.strip()]
    if schedulers:
        require_advertise(listen, advertise, "worker")
    elif advertise:
        raise click.UsageError("--advertise is the address a worker tells the schedulers it "
                               "joins: give --join too")
    worker = functools.partial(
        run_worker, listen, directory, driver, join=schedulers,
        name=name, advertise=advertise, labels=label_map,
        log_max_size=parse_memory(log_max_size), log_max_file=log_max_file,
        image_limits=parse_image_limits(image_limits), secure=not insecure, token=token,
        ipc=ipc, resolv_conf=resolv_conf, platform_override=override)
    try:
        HOST.run(_serve(worker, ready, metrics_at, docker, ipc))
    except ShoalError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


async def _serve(worker: Callable[..., Awaitable[None]], ready: ReadyNotifier | None,
                 metrics_at: tuple[str, int] | None, docker: DockerListen | None = None,
                 ipc: str = "") -> None:
    """The worker (``run_worker`` given all but ``on_ready`` and ``metrics``), with its
    metrics endpoint and Docker API (started first: an address in use fails at once; the
    Docker API reaches the worker's ``ipc`` socket at its first request)."""
    metrics = WorkerMetrics()
    endpoint = (await MetricsEndpoint.start(*metrics_at, metrics.registry)
                if metrics_at is not None else None)
    api = await DockerApiServer.start(docker, f"ipc://{ipc}") if docker is not None else None

    def notify(address: str) -> None:
        assert ready is not None
        facts = {"LISTEN": address}
        if endpoint is not None:
            facts["METRICS"] = endpoint.address
        if api is not None:
            facts["DOCKER"] = api.address
        ready.notify(**facts)

    try:
        await worker(on_ready=notify if ready else None, metrics=metrics)
    finally:
        if api is not None:
            await api.close()
        if endpoint is not None:
            await endpoint.close()


TEST_OVERRIDE_ENV = "SHOAL_TEST_PLATFORM_OVERRIDE"


def platform_override_for_tests(text: str) -> Platform | None:
    """``--platform-override OS/ARCH``, allowed only where the environment says this is a
    test (a worker that claims another OS runs its jobs on this one all the same)."""
    if not text:
        return None
    if os.environ.get(TEST_OVERRIDE_ENV) != "1":
        raise click.UsageError(f"--platform-override is for tests only: it makes this worker "
                               f"claim a platform it is not; set {TEST_OVERRIDE_ENV}=1 to "
                               "allow it")
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise click.BadParameter(f"bad platform {text!r}: expected OS/ARCH[/VARIANT]",
                                 param_hint="--platform-override")
    platform = Platform(os=parts[0], arch=parts[1], variant=parts[2] if parts[2:] else "")
    try:
        validate(platform, "--platform-override")
    except ShoalError as exc:
        raise click.BadParameter(str(exc), param_hint="--platform-override") from None
    return canonical(platform)


# --image-limits keys and the LayerLimits fields they set (sizes in docker's notation).
IMAGE_LIMIT_KEYS = {"layer": "max_total_bytes", "file": "max_file_bytes",
                    "image": "max_image_bytes", "entries": "max_entries",
                    "ratio": "max_expansion"}
_SIZE_KEYS = ("layer", "file", "image")


def parse_image_limits(text: str) -> LayerLimits:
    """``layer=2g,ratio=50``: the defaults with those bounds changed."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    changes: dict[str, int] = {}
    for key, value in key_values(items, "image limit", "--image-limits").items():
        field = IMAGE_LIMIT_KEYS.get(key)
        if field is None:
            raise click.BadParameter(f"unknown image limit {key!r}: expected one of "
                                     f"{', '.join(IMAGE_LIMIT_KEYS)}", param_hint="--image-limits")
        if key in _SIZE_KEYS:
            changes[field] = parse_memory(value)
        elif value.isdigit():
            changes[field] = int(value)
        else:
            raise click.BadParameter(f"image limit {key}={value!r}: expected a whole number",
                                     param_hint="--image-limits")
    try:
        return LayerLimits(**changes)  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--image-limits") from None
