"""``python -m cli``: the ``shoal`` command."""

from cli.main import main

main()
