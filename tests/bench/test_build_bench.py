"""The pure parts of ``python -m bench build``: the figures from the samples, and the context
it builds."""

from __future__ import annotations

from pathlib import Path

from bench._build_bench import FILES, make_context, summarize
from worker.build.dockerfile import parse


def test_summary_ratios_are_shoal_over_docker_of_the_medians() -> None:
    figures = summarize({"shoal_build_cold_ms": [100.0, 300.0, 200.0],
                         "docker_build_cold_ms": [400.0, 400.0, 900.0],
                         "shoal_build_cached_ms": [50.0, 60.0, 70.0],
                         "docker_build_cached_ms": [30.0, 30.0, 30.0]})
    assert figures["build_vs_docker"] == 0.5
    assert figures["cached_vs_docker"] == 2.0
    assert figures["build_cached_ms"] == 60.0


def test_the_context_parses_and_holds_its_files(tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx")
    assert len(list((ctx / "files").iterdir())) == FILES
    keywords = [i.keyword for i in parse((ctx / "Dockerfile").read_text()).instructions]
    assert keywords.count("RUN") == 2 and keywords.count("COPY") == 2
