"""Dockerfile builds on the worker: the parser and substitution (pure), ``.dockerignore``
rules, the build context, RUN in containers on the native runtime, new layers, and the
builder that runs the stages with the layer cache. ``worker.build_service`` serves it."""
