"""Subcommands of the ``batchrmt`` command line; each module exposes ``register(subparsers)``."""
