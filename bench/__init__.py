"""shoal bench."""
