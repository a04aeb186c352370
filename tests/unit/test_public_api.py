"""Every name ``sbdh`` promises is importable from it, and is the module's own object."""

from __future__ import annotations

import importlib

import pytest

import sbdh


@pytest.mark.parametrize("name", sbdh.__all__)
def test_exported_name_resolves_to_its_module_object(name: str) -> None:
    value = getattr(sbdh, name)
    module = importlib.import_module(f"sbdh.{sbdh._EXPORTS[name]}")
    assert value is getattr(module, name)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = sbdh.nope
