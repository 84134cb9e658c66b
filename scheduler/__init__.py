"""shoal scheduler."""
