"""The runtime-spec version this runtime implements: in a module of its own, so the version
verbs can say it without importing the state records (msgspec)."""

OCI_VERSION = "1.0.2"
