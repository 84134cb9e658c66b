"""The builder's errors, each a wire error with its own dotted code.

``DockerfileError`` names the Dockerfile line (``Dockerfile:7: unknown instruction: RUNN``);
``BuildFailed`` is a step that ran and failed (a RUN's exit code, a COPY source missing).
"""

from __future__ import annotations

from protocol.errors import InvalidArgument, RequestError


class DockerfileError(InvalidArgument):
    """The Dockerfile is malformed or asks for something this builder refuses."""

    code = "request.invalid_argument.dockerfile"

    def __init__(self, message: str, *, line: int = 0, file: str = "Dockerfile",
                 details: dict[str, str] | None = None, code: str | None = None) -> None:
        merged = dict(details or {})
        if line:
            merged.setdefault("line", str(line))
            merged.setdefault("file", file)
            if not message.startswith(f"{file}:"):
                message = f"{file}:{line}: {message}"
        super().__init__(message, details=merged, code=code)


class BuildContextError(InvalidArgument):
    """The build context is unreadable, unsafe, or larger than the limit."""

    code = "request.invalid_argument.build_context"


class BuildFailed(RequestError):
    """A step ran and failed; ``details`` carry the step, the line and any exit code."""

    code = "request.build_failed"
