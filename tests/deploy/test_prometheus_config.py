"""``deploy/prometheus.yml`` is a scrape config Prometheus can take: valid YAML, one job for the
schedulers and one for the workers, every target a HOST:PORT the ``--metrics`` option accepts,
on the conventional ports."""

from __future__ import annotations

from pathlib import Path

import yaml

from cli.metrics_endpoint import parse_metrics_address

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "prometheus.yml"


def test_scrape_config_names_schedulers_and_workers() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"shoal-scheduler", "shoal-worker"}
    for name, port in (("shoal-scheduler", 9375), ("shoal-worker", 9376)):
        [static] = jobs[name]["static_configs"]
        assert static["targets"]
        for target in static["targets"]:
            assert parse_metrics_address(target)[1] == port
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
