"""The status vocabulary and its transitions (pure)."""

from __future__ import annotations

import pytest

from access_point.statuses import (
    Direction,
    MessageStatus,
    ServiceIdentifier,
    can_transition,
    is_terminal,
)

S = MessageStatus
OUT = Direction.OUTGOING
IN = Direction.INCOMING


def test_vocabulary_is_integrasjonspunkts() -> None:
    assert [s.value for s in MessageStatus] == [
        "OPPRETTET",
        "SENDT",
        "MOTTATT",
        "LEVERT",
        "LEST",
        "FEIL",
        "ANNET",
        "LEVETID_UTLOPT",
        "INNKOMMENDE_MOTTATT",
        "INNKOMMENDE_LEVERT",
    ]
    assert {s.value for s in ServiceIdentifier} >= {
        "DPO",
        "DPV",
        "DPI",
        "DPF",
        "DPFIO",
        "DPE",
        "UNKNOWN",
    }


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.OPPRETTET, S.SENDT),
        (S.SENDT, S.MOTTATT),
        (S.MOTTATT, S.LEVERT),
        (S.LEVERT, S.LEST),
        # receipts overtaking each other skip forward
        (S.SENDT, S.LEVERT),
        (S.OPPRETTET, S.MOTTATT),
        (S.SENDT, S.FEIL),
        (S.OPPRETTET, S.LEVETID_UTLOPT),
        (S.LEVERT, S.ANNET),
    ],
)
def test_outgoing_forward(current: MessageStatus, new: MessageStatus) -> None:
    assert can_transition(current, new, OUT)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.MOTTATT, S.SENDT),
        (S.LEVERT, S.MOTTATT),
        (S.LEVERT, S.FEIL),
        (S.FEIL, S.SENDT),
        (S.LEVETID_UTLOPT, S.LEVERT),
        (S.LEST, S.LEVETID_UTLOPT),
        (S.SENDT, S.SENDT),
        (S.OPPRETTET, S.INNKOMMENDE_MOTTATT),
    ],
)
def test_outgoing_never_back(current: MessageStatus, new: MessageStatus) -> None:
    assert not can_transition(current, new, OUT)


def test_incoming() -> None:
    assert can_transition(S.INNKOMMENDE_MOTTATT, S.INNKOMMENDE_LEVERT, IN)
    assert not can_transition(S.INNKOMMENDE_LEVERT, S.INNKOMMENDE_MOTTATT, IN)
    assert not can_transition(S.INNKOMMENDE_MOTTATT, S.LEVERT, IN)
    assert can_transition(S.INNKOMMENDE_MOTTATT, S.FEIL, IN)
    assert not can_transition(S.INNKOMMENDE_LEVERT, S.FEIL, IN)


def test_terminal() -> None:
    assert {s for s in MessageStatus if is_terminal(s)} == {
        S.LEVERT,
        S.LEST,
        S.FEIL,
        S.LEVETID_UTLOPT,
        S.INNKOMMENDE_LEVERT,
    }
