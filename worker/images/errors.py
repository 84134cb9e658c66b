"""The image store's errors: bad references, rejected layers and blobs, unknown or busy images.

Each is a subclass of a wire error in ``protocol.errors`` with its own dotted code, so a client
that only knows ``request.invalid_argument`` still gets a sensible class, and one that knows
``request.invalid_argument.layer`` can show which tar entry was refused and why.
"""

from __future__ import annotations

from protocol.errors import Conflict, InvalidArgument, NotFound


class InvalidReference(InvalidArgument):
    """An image reference (``name[:tag][@digest]``) that does not parse."""

    code = "request.invalid_argument.reference"


class InvalidImage(InvalidArgument):
    """An image archive, manifest or config that is malformed or unsupported."""

    code = "request.invalid_argument.image"


class DigestMismatch(InvalidArgument):
    """Content whose digest or size differs from what its descriptor promised."""

    code = "request.invalid_argument.digest"


class LayerRejected(InvalidArgument):
    """A layer tarball was refused; ``details`` name the entry and the reason.

    Raised for unsafe entries (traversal, escapes, devices), limits, corrupt compression and
    digest mismatches. Nothing of the layer is left on disk when this is raised.
    """

    code = "request.invalid_argument.layer"

    def __init__(self, message: str, *, entry: str = "", reason: str = "",
                 details: dict[str, str] | None = None, code: str | None = None) -> None:
        merged = dict(details or {})
        if entry:
            merged["entry"] = entry
        if reason:
            merged["reason"] = reason
        super().__init__(message, details=merged, code=code)
        self.entry = merged.get("entry", "")
        self.reason = merged.get("reason", "")


class ImageNotFound(NotFound):
    """No image has this tag, id or digest."""

    code = "request.not_found.image"


class BlobNotFound(NotFound):
    """The store has no blob with this digest."""

    code = "request.not_found.blob"


class ImageInUse(Conflict):
    """The image cannot be removed: containers use it, or it has several tags (use force)."""

    code = "request.conflict.image_in_use"
