"""Placement: decide which node runs each container, or explain why none can.

Pure (no I/O, seeded RNG). Build a ``ClusterSnapshot`` from protocol records, hand it to a
``PlacementEngine`` and call ``place_batch``/``place_job``/``place_app``; ``check_placement``
verifies any result from scratch. The chain is assembled in ``pipeline.build_pipeline``.
"""

from scheduler.placement.native import compiled_path

# The compiled engine's directory first on this package's path when it may be used
# (scheduler/placement/native.py); else this directory alone.
__path__ = compiled_path(__name__, __path__)

# ruff: isort: split
from scheduler.placement.checker import Violation, check_placement
from scheduler.placement.engine import PlacementEngine
from scheduler.placement.explain import Explanation, ReasonCount
from scheduler.placement.options import EngineOptions
from scheduler.placement.pipeline import Strategy, build_pipeline
from scheduler.placement.request import (
    PlacementRequest,
    compile_spec,
    validate_app,
    validate_spec,
)
from scheduler.placement.results import Assignment, PlacementResult, Refusal, Task
from scheduler.placement.snapshot import ClusterSnapshot, NodeSnapshot, PlacedContainer

__all__ = [
    "Assignment",
    "ClusterSnapshot",
    "EngineOptions",
    "Explanation",
    "NodeSnapshot",
    "PlacedContainer",
    "PlacementEngine",
    "PlacementRequest",
    "PlacementResult",
    "ReasonCount",
    "Refusal",
    "Strategy",
    "Task",
    "Violation",
    "build_pipeline",
    "check_placement",
    "compile_spec",
    "validate_app",
    "validate_spec",
]
