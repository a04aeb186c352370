"""Command groups of the ``budstikke`` CLI; each module exposes ``register(subparsers)``."""
