"""Where an organisation's access point is: the configured participant → AS4 endpoint directory.

Until the SMP lookup of the routing issue, the endpoints of the participants served by *other*
access points come from a JSON file (``BUDSTIKKE_AS4_DIRECTORY``, or ``<data_dir>/directory.json``);
it stays as an override once the SMP answers too::

    {
      "participants": {
        "0192:974760673": {
          "endpoint": "https://ap.example.org/as4",
          "access_point_certificate": "certs/PNO000002.pem",
          "organisation_certificate": "certs/974760673.pem"
        }
      }
    }

``access_point_certificate`` is the receiving access point's certificate (the AS4 message is
encrypted to it and its receipt must be signed with it); ``organisation_certificate``, when the
receiving organisation has one, makes the document package end-to-end encrypted to it, so the
access points in between cannot read the documents. Relative paths are read from the file's
directory. Every entry is checked when the file is loaded: a broken directory stops the start,
not the first message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from sbdh.errors import ConfigurationError, InvalidIdentifier
from sbdh.identifiers import ParticipantId
from sbdh.trust import load_certificates

__all__ = ["CircuitBreaker", "Directory", "Endpoint"]


@dataclass(frozen=True)
class Endpoint:
    """How to reach one participant's access point."""

    participant: str
    url: str
    #: the receiving access point's certificate
    certificate: x509.Certificate
    #: the receiving organisation's own certificate (end-to-end encryption of the package)
    organisation_certificate: x509.Certificate | None = None

    @property
    def access_point(self) -> str:
        """The receiving access point's name: its certificate's CN."""
        names = self.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(names[0].value) if names else self.certificate.subject.rfc4514_string()


@dataclass(frozen=True)
class Directory:
    """Participants (``0192:…``, lower-cased scheme part kept as given) → their endpoint."""

    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    #: receiving organisations' own certificates for participants found through the SMP (an
    #: entry with ``organisation_certificate`` alone): the SMP does not publish them
    organisation_certificates: Mapping[str, x509.Certificate] = field(default_factory=dict)

    def lookup(self, participant: str) -> Endpoint | None:
        return self.endpoints.get(_key(participant))

    def organisation_certificate(self, participant: str) -> x509.Certificate | None:
        """The organisation's own certificate, from an override or a certificate-only entry."""
        found = self.endpoints.get(_key(participant))
        if found is not None and found.organisation_certificate is not None:
            return found.organisation_certificate
        return self.organisation_certificates.get(_key(participant))

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.endpoints.values())

    def __len__(self) -> int:
        return len(self.endpoints)

    @classmethod
    def load(cls, path: Path) -> Directory:
        """The directory in ``path``; :class:`ConfigurationError` naming what is wrong."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"AS4 directory {path}: {exc}") from exc
        participants = document.get("participants") if isinstance(document, dict) else None
        if not isinstance(participants, dict):
            raise ConfigurationError(f"AS4 directory {path}: no 'participants' object")
        endpoints: dict[str, Endpoint] = {}
        organisations: dict[str, x509.Certificate] = {}
        for participant, entry in participants.items():
            where = f"AS4 directory {path}, {participant}"
            try:
                ParticipantId(participant)
            except InvalidIdentifier as exc:
                raise ConfigurationError(f"{where}: {exc}") from exc
            if not isinstance(entry, dict):
                raise ConfigurationError(f"{where}: not an object")
            url = entry.get("endpoint")
            if url is None and "access_point_certificate" not in entry:
                # only the organisation's certificate: the endpoint comes from the SMP
                own = _certificate(path.parent, entry, "organisation_certificate", where)
                if own is None:
                    raise ConfigurationError(
                        f"{where}: give 'endpoint' and 'access_point_certificate', or "
                        "'organisation_certificate' alone"
                    )
                organisations[_key(participant)] = own
                continue
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
                raise ConfigurationError(f"{where}: 'endpoint' must be an http(s) URL")
            certificate = _certificate(path.parent, entry, "access_point_certificate", where)
            if certificate is None:
                raise ConfigurationError(f"{where}: 'access_point_certificate' is required")
            endpoints[_key(participant)] = Endpoint(
                participant=participant,
                url=url,
                certificate=certificate,
                organisation_certificate=_certificate(
                    path.parent, entry, "organisation_certificate", where
                ),
            )
        return cls(endpoints, organisations)


def _key(participant: str) -> str:
    return participant.strip().lower()


def _certificate(
    base: Path, entry: Mapping[str, object], name: str, where: str
) -> x509.Certificate | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{where}: {name!r} must be a path to a PEM file")
    path = Path(value) if Path(value).is_absolute() else base / value
    try:
        certificates = load_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{where}: {name} {path}: {exc}") from exc
    if not certificates:
        raise ConfigurationError(f"{where}: {name} {path} holds no certificate")
    return certificates[0]


class CircuitBreaker:
    """Per endpoint: after ``threshold`` failures in a row, stop trying for ``cool_off``
    seconds (open), then let one attempt through (half-open); a success closes it.

    A message whose endpoint is open is not tried at all: its job waits its backoff and comes
    back, so a dead access point costs a timestamp check per message instead of a timeout.
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        cool_off: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or cool_off <= 0:
            raise ValueError("threshold must be at least 1 and cool_off positive")
        self.threshold = threshold
        self.cool_off = cool_off
        self._clock = clock
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def allows(self, endpoint: str) -> bool:
        """Whether a call to ``endpoint`` may go out now."""
        until = self._open_until.get(endpoint)
        if until is None:
            return True
        if self._clock() >= until:
            # half-open: one attempt; it closes the breaker or opens it again
            self._open_until[endpoint] = self._clock() + self.cool_off
            return True
        return False

    def retry_in(self, endpoint: str) -> float:
        """Seconds until ``endpoint`` may be tried again (0 when it may be now)."""
        until = self._open_until.get(endpoint)
        return 0.0 if until is None else max(0.0, until - self._clock())

    def succeeded(self, endpoint: str) -> None:
        self._failures.pop(endpoint, None)
        self._open_until.pop(endpoint, None)

    def failed(self, endpoint: str) -> None:
        count = self._failures.get(endpoint, 0) + 1
        self._failures[endpoint] = count
        if count >= self.threshold:
            self._open_until[endpoint] = self._clock() + self.cool_off

    def state(self, endpoint: str) -> str:
        """``closed``, ``open`` or ``half-open`` (for metrics and logs)."""
        until = self._open_until.get(endpoint)
        if until is None:
            return "closed"
        return "open" if self._clock() < until else "half-open"
