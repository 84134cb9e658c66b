"""``python -m cli``: the ``shoal`` command."""

from cli.entry import main

main()
