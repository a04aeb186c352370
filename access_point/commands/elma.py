"""``budstikke elma serve|register|remove|list``: the local SMP (ELMA) and its registrations.

The commands themselves live in :mod:`elma.cli`; this module only puts them under the
``budstikke`` command.
"""

from __future__ import annotations

from typing import Any

from elma import cli


def register(sub: Any) -> None:
    cli.add_commands(sub, name="elma")
