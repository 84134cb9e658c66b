"""Where the user's own shoal files are: ``~/.shoal``, or ``$SHOAL_CONFIG`` (the CURVE keys of
``channels.credentials``, the CLI's registry logins). A path as text, without pathlib: the CLI
looks there on every command that makes a container, and most find nothing."""

from __future__ import annotations

import os


def user_config_dir() -> str:
    return os.environ.get("SHOAL_CONFIG") or os.path.join(os.path.expanduser("~"), ".shoal")
