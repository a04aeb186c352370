"""What goes wrong when asking a registry (the SML, KRR) where a message should go.

Each error sits under the branch of :mod:`sbdh.errors` that says what the caller must do::

    sbdh.errors.NoRoute                 404
    └── ParticipantNotRegistered        404  the SML has no entry for the participant (NXDOMAIN,
                                             or a name without NAPTR records)
    sbdh.errors.TransientDeliveryError  503
    └── RegistryUnavailable             503  the registry did not answer in time, answered
                                             SERVFAIL, refused the connection, or HTTP 5xx/429
    sbdh.errors.PermanentDeliveryError  502
    └── RegistryResponseError           502  the answer breaks the protocol: a missing or bad
                                             field (named in ``field``), no usable NAPTR record,
                                             a signed answer that does not verify
    sbdh.errors.ConfigurationError      500
    └── RegistryRefused                 500  the registry refused our request (HTTP 4xx: token
                                             missing or not accepted, request malformed); carries
                                             the registry's own message

Driver errors (dnspython, aiohttp) are translated into these at the client edge with
``raise ... from exc``. No message here carries a national id in clear.
"""

from __future__ import annotations

import re

from sbdh.errors import ConfigurationError, NoRoute, PermanentDeliveryError, TransientDeliveryError

__all__ = [
    "ParticipantNotRegistered",
    "RegistryRefused",
    "RegistryResponseError",
    "RegistryUnavailable",
    "mask_national_ids",
]

_ELEVEN_DIGITS = re.compile(r"(?<!\d)(\d{6})\d{5}(?!\d)")


def mask_national_ids(text: str) -> str:
    """``text`` with every run of exactly eleven digits masked the way
    :meth:`sbdh.identifiers.NationalId.masked` does (birth date kept, the rest starred), for
    messages that quote a far party's own words."""
    return _ELEVEN_DIGITS.sub(r"\1*****", text)


class ParticipantNotRegistered(NoRoute):
    """The SML knows no SMP for this participant: it is not on the network."""

    code = "participant-not-registered"


class RegistryUnavailable(TransientDeliveryError):
    """The registry (SML DNS, KRR) could not be asked right now; try again later."""

    code = "registry-unavailable"


class RegistryResponseError(PermanentDeliveryError):
    """The registry's answer breaks its protocol. ``field`` is the path of the offending field
    (``personer[3].kontaktinformasjon.epostadresse_oppdatert``), when there is one."""

    code = "registry-bad-response"

    def __init__(self, message: str, *, rule: str | None = None, field: str | None = None) -> None:
        super().__init__(message, rule=rule)
        self.field = field


class RegistryRefused(ConfigurationError):
    """The registry answered our request with HTTP 4xx: the access point is set up wrongly (the
    token, its scopes, the base URL) or built a request the registry does not accept."""

    code = "registry-refused"

    def __init__(self, message: str, *, status: int, rule: str | None = None) -> None:
        super().__init__(message, rule=rule)
        self.status = status
