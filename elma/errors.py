"""What can go wrong with SMP documents, placed in Budstikke's error tree (:mod:`sbdh.errors`).

::

    InvalidInput (sbdh)                    400  never retry
    ├── SmpDocumentError                   400  not an SMP document we can read: wrong root,
    │                                           missing or repeated element, bad date, bad base64
    ├── SmpPathError                       400  an SMP URL path that does not name an SMP resource
    └── SignatureError (sbdh)              400
        ├── SmpSignatureError              400  signature missing, off-profile, wrapped, or wrong
        └── UntrustedSigner (sbdh)         400  signer does not chain to the given anchors, or is
                                                not the SMP a redirect named
    NoRoute (sbdh)                         404  the receiver cannot be reached this way
    └── SmpNoRoute
        ├── NoMatchingDocumentType              no published document type matches
        ├── NoMatchingProcess                   the document type is published, not for this process
        ├── NoMatchingTransportProfile          no endpoint speaks this transport profile
        ├── NoActiveEndpoint                    endpoints exist, none is active at the given time
        └── RedirectNotFollowed                 the answer is a redirect: follow it, then select
    ConfigurationError (sbdh)              500
    └── SmpBuildError                           the model cannot be written in the asked format

Every error carries a ``rule`` (``smp-…``) naming the check that failed; messages say what is
wrong and where (an element path such as ``/SignedServiceMetadata/ServiceMetadata/…``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbdh.errors import ConfigurationError, InvalidInput, NoRoute, SignatureError

if TYPE_CHECKING:
    from elma.model import Redirect

__all__ = [
    "NoActiveEndpoint",
    "NoMatchingDocumentType",
    "NoMatchingProcess",
    "NoMatchingTransportProfile",
    "RedirectNotFollowed",
    "SmpBuildError",
    "SmpDocumentError",
    "SmpNoRoute",
    "SmpPathError",
    "SmpSignatureError",
]


class SmpDocumentError(InvalidInput):
    """An SMP answer that is not well-formed for its format."""

    code = "invalid-smp-document"


class SmpPathError(InvalidInput):
    """A URL path that is not ``/{participant}`` or ``/{participant}/services/{document type}``."""

    code = "invalid-smp-path"


class SmpSignatureError(SignatureError):
    """The SMP signature is missing, outside the accepted profile, wrapped, or does not verify."""

    code = "invalid-smp-signature"


class SmpNoRoute(NoRoute):
    """The SMP answer offers no way to deliver this document."""

    code = "no-route"


class NoMatchingDocumentType(SmpNoRoute):
    pass


class NoMatchingProcess(SmpNoRoute):
    pass


class NoMatchingTransportProfile(SmpNoRoute):
    pass


class NoActiveEndpoint(SmpNoRoute):
    pass


class RedirectNotFollowed(SmpNoRoute):
    """Selection was asked of a redirect answer; the caller must fetch ``redirect.href`` first."""

    def __init__(self, message: str, *, redirect: Redirect, rule: str | None = None) -> None:
        super().__init__(message, rule=rule)
        self.redirect = redirect


class SmpBuildError(ConfigurationError):
    """The model lacks something the requested SMP format requires."""

    code = "smp-build-error"
