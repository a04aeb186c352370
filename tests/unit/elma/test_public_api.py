"""Every name ``elma`` promises is importable from it, and is the module's own object."""

from __future__ import annotations

import importlib

import pytest

import elma


@pytest.mark.parametrize("name", elma.__all__)
def test_exported_name_resolves_to_its_module_object(name: str) -> None:
    value = getattr(elma, name)
    module = importlib.import_module(f"elma.{elma._EXPORTS[name]}")
    assert value is getattr(module, name)
    assert name in module.__all__


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = elma.nope


def test_errors_sit_in_the_project_tree() -> None:
    from sbdh.errors import ConfigurationError, InvalidInput, NoRoute, SignatureError

    assert issubclass(elma.SmpDocumentError, InvalidInput)
    assert issubclass(elma.SmpPathError, InvalidInput)
    assert issubclass(elma.SmpSignatureError, SignatureError)
    assert issubclass(elma.NoActiveEndpoint, NoRoute)
    assert issubclass(elma.RedirectNotFollowed, elma.SmpNoRoute)
    assert issubclass(elma.SmpBuildError, ConfigurationError)
