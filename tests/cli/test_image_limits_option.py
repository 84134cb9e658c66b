"""``shoal worker --image-limits``: each key sets its bound, the rest keep their defaults, and
anything else is a usage error naming the option."""

from __future__ import annotations

import click
import pytest

from cli.worker_daemon import parse_image_limits
from worker.images import LayerLimits

GiB = 1 << 30


@pytest.mark.parametrize(("text", "changed"), [
    ("", {}),
    ("layer=2g", {"max_total_bytes": 2 * GiB}),
    ("file=512m, image=4g", {"max_file_bytes": 512 << 20, "max_image_bytes": 4 * GiB}),
    ("entries=1000,ratio=50", {"max_entries": 1000, "max_expansion": 50}),
])
def test_keys_set_their_bounds(text: str, changed: dict[str, int]) -> None:
    assert parse_image_limits(text) == LayerLimits(**changed)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "fragment"), [
    ("size=1g", "unknown image limit 'size'"),
    ("layer", "is not KEY=VALUE"),
    ("ratio=lots", "expected a whole number"),
    ("ratio=0", "max_expansion must be at least 1"),
    ("layer=big", "is not a size"),
])
def test_bad_values_are_usage_errors(text: str, fragment: str) -> None:
    with pytest.raises(click.BadParameter, match=fragment):
        parse_image_limits(text)
