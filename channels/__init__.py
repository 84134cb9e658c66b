"""shoal channels."""
