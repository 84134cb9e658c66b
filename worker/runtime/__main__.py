"""``python -m worker.runtime``: the runtime's command line without the main shoal CLI."""

from worker.runtime.quick import main

main()
