"""How much of an arkivmelding Budstikke reads and accepts.

The defaults leave room for any real case (a journal entry with hundreds of attachments) and
stop a document built to exhaust memory or flood a case system before it is turned into a
model. Every limit that is exceeded is reported as rule ``NOARK-LIMIT``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sbdh.xmlsafe import XmlLimits

__all__ = ["DEFAULT_LIMITS", "NoarkLimits"]


@dataclass(frozen=True)
class NoarkLimits:
    #: largest arkivmelding.xml read, in bytes (the send path reads at most this much too)
    max_bytes: int = 16 * 1024 * 1024
    #: deepest XML nesting (folders nest; 100 levels is far past any real archive)
    max_depth: int = 100
    #: elements in the whole document, counted before the model is built
    max_elements: int = 200_000
    #: distinct files one arkivmelding may refer to
    max_files: int = 1_000
    #: registrations (journal entries and the like) in one arkivmelding
    max_registreringer: int = 1_000
    #: document objects (file references) in one arkivmelding, repeats included
    max_dokumentobjekter: int = 5_000
    #: folders inside folders
    max_mappe_depth: int = 20
    #: longest file name in ``referanseDokumentfil`` (the upload limit of the API)
    max_file_name_length: int = 255
    #: violations listed before the rest are summarised in one
    max_violations: int = 200
    #: largest arkivmelding_kvittering read, in bytes
    max_kvittering_bytes: int = 1024 * 1024
    #: messages in one kvittering
    max_kvittering_messages: int = 1_000

    def __post_init__(self) -> None:
        if min(vars(self).values()) <= 0:
            raise ValueError("NOARK limits must be positive")

    @property
    def xml(self) -> XmlLimits:
        """The hardened parser's limits for an arkivmelding."""
        return XmlLimits(max_bytes=self.max_bytes, max_depth=self.max_depth)

    @property
    def kvittering_xml(self) -> XmlLimits:
        """The hardened parser's limits for an arkivmelding_kvittering."""
        return XmlLimits(max_bytes=self.max_kvittering_bytes, max_depth=self.max_depth)


DEFAULT_LIMITS = NoarkLimits()
