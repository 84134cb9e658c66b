"""The pure part of ``bench compose``: its app file is a valid project whose services start in
a chain, as the benchmark says."""

from __future__ import annotations

from bench.compose import app_file
from cli.compose.loader import start_order
from cli.compose.translate import check_project
from tests.helpers.compose_files import load_texts


def test_the_benchmark_app_loads_and_starts_in_a_chain() -> None:
    project = load_texts({"compose.yaml": app_file(5, "busybox:bench")})
    order = start_order(project, [], with_dependencies=True)
    assert order == ["s0", "s1", "s2", "s3", "s4"]
    check_project(project, order)
    assert {s.config["network_mode"] for s in project.services.values()} == {"none"}
