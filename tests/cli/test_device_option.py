"""--device HOST[:CONTAINER][:PERMISSIONS] on create/run, read as Docker reads it."""

from __future__ import annotations

import click
import pytest

from cli.container_spec import parse_device
from protocol.specs import DeviceMapping


@pytest.mark.parametrize(("text", "host", "container", "permissions"), [
    ("/dev/fuse", "/dev/fuse", "/dev/fuse", "rwm"),
    ("/dev/fuse:/dev/f2", "/dev/fuse", "/dev/f2", "rwm"),
    ("/dev/fuse:r", "/dev/fuse", "/dev/fuse", "r"),  # a second field of r, w, m: permissions
    ("/dev/fuse:/dev/f2:mw", "/dev/fuse", "/dev/f2", "wm"),
    ("/dev/snd:/dev/sound:rw", "/dev/snd", "/dev/sound", "rw"),
])
def test_device_mappings(text: str, host: str, container: str, permissions: str) -> None:
    assert parse_device(text) == DeviceMapping(path_on_host=host, path_in_container=container,
                                               permissions=permissions)


@pytest.mark.parametrize("text", ["", "fuse", "/dev/fuse:f2", "/dev/fuse:/dev/f2:rwx",
                                  "/dev/a:/dev/b:/dev/c", "/dev/fuse:/dev/f2:"])
def test_bad_device_mappings_are_refused(text: str) -> None:
    with pytest.raises(click.BadParameter, match="bad device"):
        parse_device(text)
