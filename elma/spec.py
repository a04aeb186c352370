"""The strings the SMP specifications define: formats, namespaces, identifier schemes, profiles.

Sources: Peppol SMP 1.x (busdox namespaces), OASIS BDXR SMP 1.0 (2016/05 namespace), OASIS SMP
2.0 (ServiceGroup / ServiceMetadata document namespaces with basic and aggregate components),
and the Peppol Policy for use of Identifiers 4.x for the schemes.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "DOCTYPE_SCHEME_BUSDOX",
    "DOCTYPE_SCHEME_WILDCARD",
    "NS",
    "PARTICIPANT_SCHEME_PEPPOL",
    "PROCESS_SCHEME_PEPPOL",
    "SMP2_PATH_PREFIX",
    "SMP2_VERSION",
    "WILDCARD_INDICATOR",
    "WILDCARD_PART_SEPARATOR",
    "SmpFormat",
    "TransportProfile",
]


class SmpFormat(enum.StrEnum):
    """The three SMP document formats in use."""

    #: Peppol SMP 1.x (``http://busdox.org/serviceMetadata/publishing/1.0/``)
    PEPPOL = "peppol"
    #: OASIS BDXR SMP 1.0 (``http://docs.oasis-open.org/bdxr/ns/SMP/2016/05``)
    BDXR1 = "bdxr1"
    #: OASIS SMP 2.0 (``http://docs.oasis-open.org/bdxr/ns/SMP/2/…``)
    SMP2 = "smp2"


class NS:
    """XML namespaces, by the prefixes the specifications use."""

    SMP: Final = "http://busdox.org/serviceMetadata/publishing/1.0/"
    IDS: Final = "http://busdox.org/transport/identifiers/1.0/"
    WSA: Final = "http://www.w3.org/2005/08/addressing"
    BDXR1: Final = "http://docs.oasis-open.org/bdxr/ns/SMP/2016/05"
    SMP2_GROUP: Final = "http://docs.oasis-open.org/bdxr/ns/SMP/2/ServiceGroup"
    SMP2_METADATA: Final = "http://docs.oasis-open.org/bdxr/ns/SMP/2/ServiceMetadata"
    SMP2_BASIC: Final = "http://docs.oasis-open.org/bdxr/ns/SMP/2/BasicComponents"
    SMP2_AGGREGATE: Final = "http://docs.oasis-open.org/bdxr/ns/SMP/2/AggregateComponents"
    DS: Final = "http://www.w3.org/2000/09/xmldsig#"


class TransportProfile(enum.StrEnum):
    """Transport profile identifiers seen in SMP endpoints (Peppol code list and OASIS)."""

    PEPPOL_AS4_V2 = "peppol-transport-as4-v2_0"
    AS2_V1 = "busdox-transport-as2-ver1p0"
    AS2_V2 = "busdox-transport-as2-ver2p0"
    BDXR_AS4 = "bdxr-transport-ebms3-as4-v1p0"


#: participant identifier scheme of the Peppol network (PFUOI POLICY 5)
PARTICIPANT_SCHEME_PEPPOL: Final = "iso6523-actorid-upis"
#: the exact-match document type identifier scheme (PFUOI POLICY 16)
DOCTYPE_SCHEME_BUSDOX: Final = "busdox-docid-qns"
#: the document type scheme whose customization ids may end in ``*`` (PFUOI 4.2, exact match 4.3)
DOCTYPE_SCHEME_WILDCARD: Final = "peppol-doctype-wildcard"
#: the Peppol process identifier scheme (PFUOI POLICY 24)
PROCESS_SCHEME_PEPPOL: Final = "cenbii-procid-ubl"
#: ends a customization id published under the wildcard scheme: "this and its specialisations"
WILDCARD_INDICATOR: Final = "*"
#: separates the specialisation levels of a customization id (``billing-1@jp-1``)
WILDCARD_PART_SEPARATOR: Final = "@"
#: value of ``smb:SMPVersionID`` in SMP 2.0 documents
SMP2_VERSION: Final = "2.0"
#: path segment the OASIS SMP 2.0 REST binding puts before the participant id
SMP2_PATH_PREFIX: Final = "bdxr-smp-2"
