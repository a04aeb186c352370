"""The secure envelope core."""
