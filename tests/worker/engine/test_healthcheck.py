"""Docker's healthcheck rules, pure: the merge with the image's, the transitions, the delays."""

from __future__ import annotations

import pytest

from protocol.durations import go_duration, parse_duration
from protocol.errors import InvalidSpec
from protocol.observed import MAX_HEALTH_LOG, Health, HealthResult
from protocol.specs import ContainerSpec, HealthCheck
from protocol.validation import check_spec
from worker.engine.healthcheck import (
    Probe,
    apply_result,
    next_delay,
    probe_output,
    resolve,
    started,
    stopped,
)

PROBE = Probe(argv=("true",), interval=30.0, timeout=30.0, start_period=10.0,
              start_interval=5.0, retries=3)


def result(at: float, code: int) -> HealthResult:
    return HealthResult(start=at, end=at + 0.01, exit_code=code, output=str(code))


def test_resolve_takes_the_spec_over_the_image_field_by_field_then_docker_defaults() -> None:
    image = HealthCheck(test=["CMD-SHELL", "wget -q localhost"], interval=10.0, retries=5)
    probe = resolve(HealthCheck(timeout=2.0), image)
    assert probe == Probe(argv=("/bin/sh", "-c", "wget -q localhost"), interval=10.0,
                          timeout=2.0, start_period=0.0, start_interval=5.0, retries=5)
    assert resolve(HealthCheck(test=["CMD", "check", "-v"]), None) == Probe(
        argv=("check", "-v"), interval=30.0, timeout=30.0, start_period=0.0,
        start_interval=5.0, retries=3)
    assert resolve(HealthCheck(test=["NONE"]), image) is None  # --no-healthcheck
    assert resolve(None, None) is None
    assert resolve(HealthCheck(interval=3.0), None) is None  # durations alone: no test


@pytest.mark.parametrize(("statuses", "codes", "expected", "streak"), [
    # A pass makes it healthy at once, whatever came before.
    ("starting", [0], "healthy", 0),
    # Failures count from the start period's end (t=10): retries=3 in a row → unhealthy.
    ("starting", [1, 1], "starting", 2),
    ("starting", [1, 1, 1], "unhealthy", 3),
    ("healthy", [1, 1, 0], "healthy", 0),
    ("healthy", [1, 1, 1, 1], "unhealthy", 4),
    ("unhealthy", [0], "healthy", 0),
    ("starting", [2], "starting", 1),  # any non-zero code is a failure
    ("starting", [-1, -1, -1], "unhealthy", 3),  # a timeout is a failure
])
def test_transitions_after_the_start_period(statuses: str, codes: list[int], expected: str,
                                            streak: int) -> None:
    health = Health(status=statuses)  # type: ignore[arg-type]
    for n, code in enumerate(codes):
        health = apply_result(health, result(100.0 + n, code), PROBE, container_started_at=0.0)
    assert (health.status, health.failing_streak) == (expected, streak)


def test_failures_in_the_start_period_do_not_count_while_starting() -> None:
    health = started(None)
    for t in (1.0, 4.0, 9.0):  # within start_period=10 of the start at 0
        health = apply_result(health, result(t, 1), PROBE, container_started_at=0.0)
    assert (health.status, health.failing_streak) == ("starting", 0)
    assert len(health.log) == 3  # recorded, not counted
    health = apply_result(health, result(10.5, 1), PROBE, container_started_at=0.0)
    assert health.failing_streak == 1
    # Once healthy, the grace is over even within the start period.
    healthy = apply_result(started(None), result(1.0, 0), PROBE, 0.0)
    healthy = apply_result(healthy, result(2.0, 1), PROBE, 0.0)
    assert healthy.failing_streak == 1


def test_the_log_keeps_the_last_five_results_oldest_first() -> None:
    health = started(None)
    for n in range(8):
        health = apply_result(health, result(100.0 + n, n % 2), PROBE, 0.0)
    assert len(health.log) == MAX_HEALTH_LOG
    assert [r.start for r in health.log] == [103.0, 104.0, 105.0, 106.0, 107.0]


def test_start_and_stop_keep_the_log_and_reset_or_mark_unhealthy() -> None:
    health = Health(status="healthy", failing_streak=0, log=[result(1.0, 0)])
    assert stopped(health).status == "unhealthy"
    again = started(stopped(health))
    assert (again.status, again.failing_streak, again.log) == ("starting", 0, health.log)


def test_the_start_interval_applies_while_starting_within_the_start_period() -> None:
    starting = started(None)
    assert next_delay(PROBE, starting, container_started_at=0.0, now=3.0) == 5.0
    assert next_delay(PROBE, starting, container_started_at=0.0, now=11.0) == 30.0
    healthy = Health(status="healthy")
    assert next_delay(PROBE, healthy, container_started_at=0.0, now=3.0) == 30.0


def test_output_is_cut_at_4096_bytes_as_docker_does() -> None:
    assert probe_output(b"ok\n", False) == "ok\n"
    long = probe_output(b"x" * 5000, False)
    assert long == "x" * 4096 + "..."
    assert probe_output(b"y" * 4096, True) == "y" * 4096 + "..."
    assert probe_output(b"\xff" * 10, False) == "\ufffd" * 10


@pytest.mark.parametrize(("seconds", "text"), [
    (30.0, "30s"), (90.0, "1m30s"), (0.5, "500ms"), (3600.0, "1h0m0s"), (1.5, "1.5s")])
def test_durations_print_as_go_prints_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.parametrize(("check", "field"), [
    (HealthCheck(test=["HTTP", "x"]), "healthcheck.test[0]"),
    (HealthCheck(test=["NONE", "x"]), "healthcheck.test"),
    (HealthCheck(test=["CMD"]), "healthcheck.test"),
    (HealthCheck(test=["CMD-SHELL", "a", "b"]), "healthcheck.test"),
    (HealthCheck(test=["CMD", "true"], interval=0.0001), "healthcheck.interval"),
])
def test_bad_healthchecks_are_refused_naming_the_field(check: HealthCheck, field: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        check_spec(ContainerSpec(image="x", healthcheck=check))
    assert field in str(caught.value)


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("500ms", 0.5), ("0", 0.0),
    ("2h45m", 9900.0), ("10us", 1e-5), ("-3s", -3.0)])
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "5 s", "1d", "s", "1m30"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_an_image_config_s_healthcheck_is_read_in_nanoseconds() -> None:
    from worker.images.oci import ContainerConfig, ContainerDefaults, _decode

    config = _decode(b'{"Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"], '
                     b'"Interval": 5000000000, "Retries": 4, "StartPeriod": -1}}',
                     ContainerConfig, "config")
    defaults = ContainerDefaults.from_config(config)
    assert defaults.healthcheck == HealthCheck(test=["CMD-SHELL", "curl -f localhost"],
                                               interval=5.0, retries=4)
    probe = resolve(HealthCheck(retries=1), defaults.healthcheck)
    assert probe is not None and (probe.interval, probe.retries) == (5.0, 1)
    assert ContainerDefaults.from_config(_decode(b'{"Healthcheck": {}}', ContainerConfig,
                                                 "config")).healthcheck is None
