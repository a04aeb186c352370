"""What goes wrong with an arkivmelding or its receipt, in the shape of the envelope's errors.

::

    sbdh.errors.EnvelopeError            400  the violations, each with a rule id
    └── ArkivmeldingError                400  the arkivmelding or kvittering breaks NOARK rules

:class:`ArkivmeldingError` is an :class:`~sbdh.errors.EnvelopeError` so that the business API
lists its violations in the problem details as it lists an SBD's. Each violation is a
:class:`NoarkViolation`: a :class:`~sbdh.errors.Violation` that also says *where* (an XPath to
the element, ``/arkivmelding/mappe[1]/basisregistrering[1]``); its message starts with the same
location, so it reads on its own wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sbdh.errors import EbmsCode, EnvelopeError, Violation

__all__ = ["ArkivmeldingError", "NoarkViolation"]


@dataclass(frozen=True)
class NoarkViolation(Violation):
    """One broken rule (``NOARK-...``), its explanation, and the element it concerns."""

    location: str = ""

    @classmethod
    def at(cls, rule: str, location: str, text: str) -> NoarkViolation:
        """A violation whose message is ``"<location>: <text>"``."""
        return cls(rule, f"{location}: {text}" if location else text, location)

    def as_dict(self) -> dict[str, str]:
        out = super().as_dict()
        if self.location:
            out["location"] = self.location
        return out


class ArkivmeldingError(EnvelopeError):
    """The arkivmelding (or arkivmelding_kvittering) breaks one or more rules; all are listed.

    Bad input: never retry. A receiver answers it with an ERROR kvittering naming the
    violations (:func:`~adapters.noark.kvittering.kvittering_for`), not with an ebMS error: the
    arkivmelding is business content inside the package, not part of the AS4 exchange.
    """

    code = "invalid-arkivmelding"
    ebms_code = EbmsCode.OTHER

    def __init__(self, violations: Iterable[Violation]) -> None:
        super().__init__(tuple(violations))
