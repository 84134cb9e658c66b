"""Docker's healthcheck rules as pure functions: which probe a container has (its spec over its
image's, then Docker's defaults), how one probe's result moves its health, when the next probe
is due. No clocks: times are arguments. ``health_monitor`` runs the probes.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.durations import go_duration
from protocol.observed import MAX_HEALTH_LOG, MAX_HEALTH_OUTPUT, Health, HealthResult
from protocol.specs import HealthCheck

# Docker's defaults (daemon/health.go).
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
EXIT_HEALTHY = 0
EXIT_PROBE_FAILED = -1  # could not run, or timed out


@dataclass(frozen=True, slots=True)
class Probe:
    """A container's healthcheck with every default filled in: ``argv`` is what runs."""

    argv: tuple[str, ...]
    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int


def resolve(spec: HealthCheck | None, image: HealthCheck | None) -> Probe | None:
    """The probe to run: the spec's fields over the image's (an empty test or a 0 inherits, as
    Docker merges them), then Docker's defaults; None without a test or with ``NONE``."""
    spec = spec or HealthCheck()
    image = image or HealthCheck()
    test = spec.test or image.test
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        argv: tuple[str, ...] = ("/bin/sh", "-c", *test[1:])
    elif test[0] == "CMD":
        argv = tuple(test[1:])
    else:  # the image's own test of an unknown form: Docker refuses to run it
        return None
    if not argv:
        return None

    def pick(name: str, default: float) -> float:
        return float(getattr(spec, name) or getattr(image, name) or default)

    return Probe(argv=argv, interval=pick("interval", DEFAULT_INTERVAL),
                 timeout=pick("timeout", DEFAULT_TIMEOUT),
                 start_period=pick("start_period", DEFAULT_START_PERIOD),
                 start_interval=pick("start_interval", DEFAULT_START_INTERVAL),
                 retries=int(spec.retries or image.retries or DEFAULT_RETRIES))


def started(previous: Health | None) -> Health:
    """A (re)started container's health: starting, no failures, the old results kept."""
    return Health(status="starting", failing_streak=0,
                  log=list(previous.log) if previous else [])


def stopped(previous: Health) -> Health:
    """Docker marks a container whose monitor stopped unhealthy (for compatibility)."""
    return Health(status="unhealthy", failing_streak=previous.failing_streak,
                  log=list(previous.log))


def apply_result(health: Health, result: HealthResult, probe: Probe,
                 container_started_at: float) -> Health:
    """Docker's ``handleProbeResult``: a pass makes it healthy and clears the streak; a failure
    adds to the streak (not while it is still starting within the start period) and makes it
    unhealthy at ``retries`` in a row. The last five results are kept."""
    log = [*health.log, result][-MAX_HEALTH_LOG:]
    if result.exit_code == EXIT_HEALTHY:
        return Health(status="healthy", failing_streak=0, log=log)
    in_grace = health.status == "starting" \
        and result.start - container_started_at < probe.start_period
    if in_grace:
        return Health(status=health.status, failing_streak=health.failing_streak, log=log)
    streak = health.failing_streak + 1
    status = "unhealthy" if streak >= probe.retries else health.status
    return Health(status=status, failing_streak=streak, log=log)


def next_delay(probe: Probe, health: Health, container_started_at: float, now: float) -> float:
    """Seconds until the next probe: ``start_interval`` while starting within the start
    period, else ``interval`` (Docker's ``getInterval``)."""
    if now - container_started_at < probe.start_period and health.status == "starting":
        return probe.start_interval
    return probe.interval


def probe_output(data: bytes, truncated: bool) -> str:
    """A probe's output as Docker keeps it: the first 4096 bytes, '...' when there was more."""
    text = data[:MAX_HEALTH_OUTPUT].decode("utf-8", "replace")
    if len(text) > MAX_HEALTH_OUTPUT:  # replacement characters never widen it: bytes ≥ chars
        text = text[:MAX_HEALTH_OUTPUT]
    return text + "..." if truncated or len(data) > MAX_HEALTH_OUTPUT else text


def timed_out(probe: Probe) -> str:
    """Docker's output for a probe that outlived its timeout."""
    return f"Health check exceeded timeout ({go_duration(probe.timeout)})"
