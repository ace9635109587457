"""The `robolearn` command line."""
