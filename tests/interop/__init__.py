"""Interoperability tests: Budstikke against an independent AS4 implementation (PyPI ``as4``)."""
