"""Backoff lives in :mod:`sbdh.backoff` (the registries' clients in ``routing`` use it too, and
``routing`` may not depend on the service); this name is kept for the service's own modules."""

from sbdh.backoff import Backoff

__all__ = ["Backoff"]
