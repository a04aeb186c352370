"""The eFormidling status vocabulary, directions and service identifiers (pure).

Statuses are integrasjonspunkt's ``ReceiptStatus``, spelled the same so existing case systems
understand them unchanged. An outgoing message moves

::

    OPPRETTET ─▶ SENDT ─▶ MOTTATT ─▶ LEVERT ─▶ LEST
        │          │         │          │
        └──────────┴─────────┴──────────┴──▶ FEIL | LEVETID_UTLOPT      (ANNET: any time)

and an incoming one ``INNKOMMENDE_MOTTATT ─▶ INNKOMMENDE_LEVERT`` (or LEVETID_UTLOPT / FEIL).
Receipts can overtake each other on the wire (a LEVERT may arrive before the MOTTATT that
preceded it), so a transition may skip forward; it never goes back. LEST is the business
receipt (``arkivmelding_kvittering``) and can follow LEVERT only. Terminal statuses end a
message: nothing but ANNET is recorded after them, and the lifetime sweep leaves them alone.
LEVERT is terminal for the lifetime sweep (the receiver has the message) but LEST may still
follow it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

__all__ = [
    "Direction",
    "MessageStatus",
    "ServiceIdentifier",
    "can_transition",
    "ends_lifetime",
    "is_terminal",
]


class MessageStatus(enum.StrEnum):
    OPPRETTET = "OPPRETTET"
    SENDT = "SENDT"
    MOTTATT = "MOTTATT"
    LEVERT = "LEVERT"
    LEST = "LEST"
    FEIL = "FEIL"
    ANNET = "ANNET"
    LEVETID_UTLOPT = "LEVETID_UTLOPT"
    INNKOMMENDE_MOTTATT = "INNKOMMENDE_MOTTATT"
    INNKOMMENDE_LEVERT = "INNKOMMENDE_LEVERT"


class Direction(enum.StrEnum):
    OUTGOING = "OUTGOING"
    INCOMING = "INCOMING"


class ServiceIdentifier(enum.StrEnum):
    """The eFormidling channel a message travels by (integrasjonspunkt's ServiceIdentifier)."""

    #: organisation to organisation (arkivmelding, avtalt, einnsyn)
    DPO = "DPO"
    #: to organisations without an integration point (Altinn mailbox)
    DPV = "DPV"
    #: digital post to citizens (and print)
    DPI = "DPI"
    #: to municipalities through KS FIKS
    DPF = "DPF"
    #: KS FIKS IO
    DPFIO = "DPFIO"
    #: eInnsyn
    DPE = "DPE"
    #: health (newer integrasjonspunkt versions)
    DPH = "DPH"
    UNKNOWN = "UNKNOWN"


_OUT = MessageStatus
#: where each status may go next (ANNET, FEIL and LEVETID_UTLOPT are handled in can_transition)
_FORWARD: Mapping[MessageStatus, frozenset[MessageStatus]] = {
    _OUT.OPPRETTET: frozenset({_OUT.SENDT, _OUT.MOTTATT, _OUT.LEVERT, _OUT.LEST}),
    _OUT.SENDT: frozenset({_OUT.MOTTATT, _OUT.LEVERT, _OUT.LEST}),
    _OUT.MOTTATT: frozenset({_OUT.LEVERT, _OUT.LEST}),
    _OUT.LEVERT: frozenset({_OUT.LEST}),
    _OUT.LEST: frozenset(),
    _OUT.INNKOMMENDE_MOTTATT: frozenset({_OUT.INNKOMMENDE_LEVERT}),
    _OUT.INNKOMMENDE_LEVERT: frozenset(),
    _OUT.FEIL: frozenset(),
    _OUT.LEVETID_UTLOPT: frozenset(),
    _OUT.ANNET: frozenset(),
}

#: statuses after which a message is finished (no more progress expected)
TERMINAL: frozenset[MessageStatus] = frozenset(
    {
        MessageStatus.LEVERT,
        MessageStatus.LEST,
        MessageStatus.FEIL,
        MessageStatus.LEVETID_UTLOPT,
        MessageStatus.INNKOMMENDE_LEVERT,
    }
)

OUTGOING_STATUSES: frozenset[MessageStatus] = frozenset(
    {
        MessageStatus.OPPRETTET,
        MessageStatus.SENDT,
        MessageStatus.MOTTATT,
        MessageStatus.LEVERT,
        MessageStatus.LEST,
        MessageStatus.FEIL,
        MessageStatus.ANNET,
        MessageStatus.LEVETID_UTLOPT,
    }
)
INCOMING_STATUSES: frozenset[MessageStatus] = frozenset(
    {
        MessageStatus.INNKOMMENDE_MOTTATT,
        MessageStatus.INNKOMMENDE_LEVERT,
        MessageStatus.FEIL,
        MessageStatus.ANNET,
        MessageStatus.LEVETID_UTLOPT,
    }
)


def is_terminal(status: MessageStatus) -> bool:
    """Whether a message with ``status`` is finished (the lifetime sweep skips it)."""
    return status in TERMINAL


def ends_lifetime(status: MessageStatus) -> bool:
    """Alias of :func:`is_terminal`, named for the lifetime sweep's question."""
    return is_terminal(status)


def allowed_for(direction: Direction) -> frozenset[MessageStatus]:
    return OUTGOING_STATUSES if direction is Direction.OUTGOING else INCOMING_STATUSES


def can_transition(current: MessageStatus, new: MessageStatus, direction: Direction) -> bool:
    """Whether ``new`` may be recorded on a message of ``direction`` whose status is ``current``.

    ANNET (a free-text note) may always be recorded; FEIL and LEVETID_UTLOPT end any message
    that is not finished yet; otherwise only forward steps of the graph in the module docstring.
    """
    if new not in allowed_for(direction):
        return False
    if new is MessageStatus.ANNET:
        return True
    if new in (MessageStatus.FEIL, MessageStatus.LEVETID_UTLOPT):
        return not is_terminal(current)
    return new in _FORWARD[current]
