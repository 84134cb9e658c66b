"""A module-level constant (an UPPER_CASE name) is assigned once per module.

Two branches that each add a constant of the same name merge without a conflict, and the later
assignment silently wins for every importer (a label constant once changed the resolver's job
label this way); ruff's redefinition check covers functions, classes and imports, not these.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("protocol", "channels", "scheduler", "worker", "cli", "dockerapi", "bench")


def assigned_twice(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, second line) for each UPPER_CASE name a module's top level
    assigns more than once."""
    seen: dict[str, int] = {}
    twice: list[tuple[str, int, int]] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper():
                if target.id in seen:
                    twice.append((target.id, seen[target.id], node.lineno))
                seen[target.id] = node.lineno
    return twice


def test_a_planted_second_assignment_is_found() -> None:
    assert assigned_twice('LABEL = "a"\nOTHER = 1\nLABEL = "b"\n') == [("LABEL", 1, 3)]
    assert assigned_twice('LABEL: str = "a"\n') == []


def test_no_module_assigns_a_constant_twice() -> None:
    found = [f"{path.relative_to(ROOT)}: {name} at lines {first} and {second}"
             for package in SHIPPED for path in sorted((ROOT / package).rglob("*.py"))
             for name, first, second in assigned_twice(path.read_text())]
    assert found == []
