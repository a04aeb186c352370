"""The participant registry.

Pure core for the SMP document formats (Peppol busdox, OASIS BDXR SMP 1.0 and OASIS SMP 2.0):
bytes and values in, frozen values out; trust anchors and the clock passed in. One module per
idea:

=============  ================================================================================
``spec``       the specifications' strings: formats, namespaces, schemes, transport profiles
``model``      SMP documents as frozen values, the same for all formats
``errors``     what can go wrong, in the project's error tree
``paths``      SMP resource paths (percent-encoded ``scheme::value``), both ways
``parse``      read ServiceGroup / (Signed)ServiceMetadata of any format (unverified)
``verify``     check an SMP signature against trust anchors; read only what it covers
``select``     choose the endpoint: document type (with Peppol wildcards), process, profile, time
``build``      write the model in any of the formats
``sign``       sign service metadata (and SMP 2.0 service groups) as an SMP does
``registry``   what the local SMP publishes: participant records, their JSON form, storage
``server``     the local SMP/ELMA server (aiohttp): signed answers in all formats, admin API
``loopback``   the loopback aiohttp server it runs on, shared with the local stand-ins
``cli``        ``serve`` / ``register`` / ``remove`` / ``list`` as plain command functions
=============  ================================================================================

The server is what the embedded network and the two-access-point setup use, so that routing
between Budstikke instances is discovered through SML and SMP as on the real network.

The names below are importable from ``elma`` directly; they load their module on first use, so
``import elma.errors`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # spec
    "NS": "spec",
    "SmpFormat": "spec",
    "TransportProfile": "spec",
    "DOCTYPE_SCHEME_BUSDOX": "spec",
    "DOCTYPE_SCHEME_WILDCARD": "spec",
    "PARTICIPANT_SCHEME_PEPPOL": "spec",
    "PROCESS_SCHEME_PEPPOL": "spec",
    # model
    "DocumentTypeId": "model",
    "DocumentTypeParts": "model",
    "Endpoint": "model",
    "ParticipantId": "model",
    "Process": "model",
    "ProcessId": "model",
    "Redirect": "model",
    "ServiceGroup": "model",
    "ServiceMetadata": "model",
    "ServiceReference": "model",
    # errors
    "NoActiveEndpoint": "errors",
    "NoMatchingDocumentType": "errors",
    "NoMatchingProcess": "errors",
    "NoMatchingTransportProfile": "errors",
    "RedirectNotFollowed": "errors",
    "SmpBuildError": "errors",
    "SmpDocumentError": "errors",
    "SmpNoRoute": "errors",
    "SmpPathError": "errors",
    "SmpSignatureError": "errors",
    # paths
    "SmpPath": "paths",
    "parse_smp_path": "paths",
    "service_group_path": "paths",
    "service_metadata_path": "paths",
    # parse
    "parse_service_group": "parse",
    "parse_service_metadata": "parse",
    # verify
    "VerifiedServiceGroup": "verify",
    "VerifiedServiceMetadata": "verify",
    "VerifyPolicy": "verify",
    "check_redirect_signer": "verify",
    "verify_service_group": "verify",
    "verify_service_metadata": "verify",
    # select
    "SelectedEndpoint": "select",
    "match_document_type": "select",
    "select_endpoint": "select",
    # build and sign
    "build_service_group": "build",
    "build_service_metadata": "build",
    "sign_service_group": "sign",
    "sign_service_metadata": "sign",
    # registry
    "JsonFileRegistry": "registry",
    "MemoryRegistry": "registry",
    "ParticipantRecord": "registry",
    "ParticipantRegistry": "registry",
    "RedirectTarget": "registry",
    "RegistrationError": "registry",
    "ServiceRegistration": "registry",
    "record_from_json": "registry",
    "record_to_json": "registry",
    # server
    "ElmaServer": "server",
    "ElmaService": "server",
    "SmlPublisher": "server",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - the table above is the list


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'elma' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"elma.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
