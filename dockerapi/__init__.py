"""The Docker Engine API front end: HTTP in, the daemon's own verbs out.

One more client of a worker's or a scheduler's verbs (DESIGN.md, "Every service speaks the same
verbs"): it reaches its daemon through the daemon's root-only local socket like the CLI does, and
translates Docker's JSON and streams to and from shoal's messages, with no logic of its own.
Imports protocol/ and channels/ only; cli/ starts it beside a daemon (``--docker-api``).
"""
