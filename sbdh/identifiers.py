"""Who a message is from and to: participant ids, organisation numbers and national ids.

* :class:`ParticipantId` is an ISO 6523 participant id in the Peppol scheme
  ``iso6523-actorid-upis`` (``0192:991825827``). Ids compare case-insensitively, as the Peppol
  policy for identifiers requires; the spelling received is kept for display.
* :class:`OrganisationNumber` is a Norwegian organisation number (nine digits, mod 11).
* :class:`NationalId` is a fødselsnummer or D-nummer (eleven digits, two mod-11 check digits),
  including the synthetic test ids that add 40 or 80 to the month. Its ``repr`` and ``str`` are
  masked so that a national id never reaches a log in clear.

Every parse failure is an :class:`~sbdh.errors.InvalidIdentifier` whose ``rule`` names the check
that failed.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from sbdh.errors import InvalidIdentifier

__all__ = [
    "ICD_NO_ORGNR",
    "PARTICIPANT_SCHEME",
    "NationalId",
    "NationalIdKind",
    "OrganisationNumber",
    "ParticipantId",
    "mod11_check_digit",
]

#: the only participant identifier scheme in use in Peppol and eFormidling
PARTICIPANT_SCHEME = "iso6523-actorid-upis"
#: ISO 6523 ICD of the Norwegian organisation number (Enhetsregisteret)
ICD_NO_ORGNR = "0192"
#: the retired Peppol-local code for the same register, still seen in eFormidling traffic
ICD_NO_ORGNR_LEGACY = "9908"

_ORGNR_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
_NID_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_NID_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_MAX_VALUE_LENGTH = 50  # Peppol Policy for use of identifiers, POLICY 1
_ICD_VALUE = re.compile(r"^(?P<icd>[0-9]{4}):(?P<id>.+)$", re.DOTALL)
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")


def mod11_check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    """The mod-11 check digit over ``digits``; ``None`` when no valid digit exists (r = 1)."""
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    if remainder == 0:
        return 0
    if remainder == 1:
        return None
    return 11 - remainder


@dataclass(frozen=True)
class OrganisationNumber:
    """A Norwegian organisation number: nine digits, the last a mod-11 check digit."""

    value: str

    def __post_init__(self) -> None:
        v = self.value
        if len(v) != 9:
            raise InvalidIdentifier(
                f"organisation number must have 9 digits, got {len(v)} characters",
                rule="orgnr-length",
            )
        if not v.isascii() or not v.isdigit():
            raise InvalidIdentifier(
                "organisation number must contain only the digits 0-9", rule="orgnr-digits"
            )
        expected = mod11_check_digit(v[:8], _ORGNR_WEIGHTS)
        if expected is None or expected != int(v[8]):
            raise InvalidIdentifier(
                f"organisation number {v} fails the mod-11 check digit", rule="orgnr-check-digit"
            )

    @classmethod
    def parse(cls, text: str) -> OrganisationNumber:
        """Parse, tolerating the spaces people write (``991 825 827``)."""
        return cls(text.replace(" ", "").strip())

    def participant_id(self) -> ParticipantId:
        return ParticipantId(f"{ICD_NO_ORGNR}:{self.value}")

    def __str__(self) -> str:
        return self.value


class NationalIdKind(enum.Enum):
    FODSELSNUMMER = "fødselsnummer"
    D_NUMMER = "D-nummer"


@dataclass(frozen=True, repr=False)
class NationalId:
    """A national id (fødselsnummer or D-nummer). Masked in ``repr`` and ``str``."""

    value: str
    kind: NationalIdKind = field(init=False, compare=False)
    #: True for the synthetic test populations (month + 40 or month + 80)
    synthetic: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        v = self.value
        if len(v) != 11:
            raise InvalidIdentifier(
                f"national id must have 11 digits, got {len(v)} characters", rule="nid-length"
            )
        if not v.isascii() or not v.isdigit():
            raise InvalidIdentifier(
                "national id must contain only the digits 0-9", rule="nid-digits"
            )
        first = mod11_check_digit(v[:9], _NID_WEIGHTS_1)
        if first is None or first != int(v[9]):
            raise InvalidIdentifier(
                "national id fails its first check digit (k1)", rule="nid-check-digit-1"
            )
        second = mod11_check_digit(v[:10], _NID_WEIGHTS_2)
        if second is None or second != int(v[10]):
            raise InvalidIdentifier(
                "national id fails its second check digit (k2)", rule="nid-check-digit-2"
            )
        day, month = int(v[0:2]), int(v[2:4])
        kind = NationalIdKind.FODSELSNUMMER
        if day > 40:
            kind, day = NationalIdKind.D_NUMMER, day - 40
        synthetic = False
        if month > 80:
            synthetic, month = True, month - 80
        elif month > 40:
            synthetic, month = True, month - 40
        if not (1 <= day <= 31 and 1 <= month <= 12):
            raise InvalidIdentifier(
                "national id does not start with a valid date (DDMMYY)", rule="nid-date"
            )
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "synthetic", synthetic)

    @classmethod
    def parse(cls, text: str) -> NationalId:
        return cls(text.replace(" ", "").strip())

    def masked(self) -> str:
        return self.value[:6] + "*****"

    def __repr__(self) -> str:
        return f"NationalId({self.masked()!r})"

    def __str__(self) -> str:
        return self.masked()


@dataclass(frozen=True, eq=False)
class ParticipantId:
    """An ISO 6523 participant id such as ``0192:991825827``.

    ``value`` is ``<icd>:<identifier>``; ``scheme`` is the identifier scheme (always
    ``iso6523-actorid-upis`` in practice). Equality and hashing ignore case, as Peppol requires.
    For the Norwegian organisation number (ICD 0192, and the legacy 9908) the number itself is
    checked too.
    """

    value: str
    scheme: str = PARTICIPANT_SCHEME

    def __post_init__(self) -> None:
        if self.scheme.lower() != PARTICIPANT_SCHEME:
            raise InvalidIdentifier(
                f"participant identifier scheme must be {PARTICIPANT_SCHEME!r}, "
                f"got {self.scheme!r}",
                rule="participant-scheme",
            )
        if not self.value or self.value != self.value.strip():
            raise InvalidIdentifier(
                "participant identifier is empty or has surrounding whitespace",
                rule="participant-value",
            )
        if len(self.value) > _MAX_VALUE_LENGTH:
            raise InvalidIdentifier(
                f"participant identifier is {len(self.value)} characters; at most "
                f"{_MAX_VALUE_LENGTH} are allowed",
                rule="participant-length",
            )
        if not _PRINTABLE_ASCII.match(self.value):
            raise InvalidIdentifier(
                "participant identifier may contain only printable ASCII without spaces",
                rule="participant-charset",
            )
        match = _ICD_VALUE.match(self.value)
        if match is None:
            raise InvalidIdentifier(
                f"participant identifier {self.value!r} is not of the form <4-digit ICD>:<id>",
                rule="participant-icd",
            )
        if match["icd"] in (ICD_NO_ORGNR, ICD_NO_ORGNR_LEGACY):
            OrganisationNumber(match["id"])

    @classmethod
    def parse(cls, text: str) -> ParticipantId:
        """Parse ``0192:991825827`` or the URI form ``iso6523-actorid-upis::0192:991825827``."""
        text = text.strip()
        if "::" in text:
            scheme, _, value = text.partition("::")
            return cls(value, scheme)
        return cls(text)

    @property
    def icd(self) -> str:
        return self.value.split(":", 1)[0]

    @property
    def identifier(self) -> str:
        return self.value.split(":", 1)[1]

    @property
    def organisation_number(self) -> OrganisationNumber | None:
        if self.icd in (ICD_NO_ORGNR, ICD_NO_ORGNR_LEGACY):
            return OrganisationNumber(self.identifier)
        return None

    def uri(self) -> str:
        """The ``scheme::value`` form used in SMP URLs and AS4 properties."""
        return f"{self.scheme}::{self.value}"

    def _key(self) -> tuple[str, str]:
        return (self.scheme.lower(), self.value.lower())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParticipantId):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.value
