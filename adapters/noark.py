"""The NOARK case-system edge: arkivmelding documents in and out.

For now it writes the smallest arkivmelding (NOARK 5, the eFormidling form) that describes a
set of files: one case file (saksmappe) with one journal entry (journalpost) whose document
descriptions reference each file. ``budstikke send`` and the demo use it when the user brings
files but no arkivmelding of their own. Parsing and full validation come with the archive
exchange (AS4 issue).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape

__all__ = ["ARKIVMELDING_NS", "minimal_arkivmelding"]

ARKIVMELDING_NS = "http://www.arkivverket.no/standarder/noark5/arkivmelding"


def minimal_arkivmelding(
    *,
    message_id: str,
    title: str,
    files: Sequence[str],
    now: datetime,
    system: str = "Budstikke",
) -> bytes:
    """An arkivmelding whose journal entry lists ``files``, the first as the main document."""
    if not files:
        raise ValueError("an arkivmelding describes at least one file")
    descriptions = []
    for number, name in enumerate(files, start=1):
        role = "Hoveddokument" if number == 1 else "Vedlegg"
        descriptions.append(
            f"""      <dokumentbeskrivelse>
        <dokumenttype>Brev</dokumenttype>
        <tilknyttetRegistreringSom>{role}</tilknyttetRegistreringSom>
        <dokumentnummer>{number}</dokumentnummer>
        <tittel>{escape(name)}</tittel>
        <dokumentobjekt>
          <referanseDokumentfil>{escape(name)}</referanseDokumentfil>
        </dokumentobjekt>
      </dokumentbeskrivelse>
"""
        )
    stamp = now.isoformat(timespec="seconds")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<arkivmelding xmlns="{ARKIVMELDING_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <system>{escape(system)}</system>
  <meldingId>{escape(message_id)}</meldingId>
  <tidspunkt>{stamp}</tidspunkt>
  <antallFiler>{len(files)}</antallFiler>
  <mappe xsi:type="saksmappe">
    <tittel>{escape(title)}</tittel>
    <registrering xsi:type="journalpost">
      <tittel>{escape(title)}</tittel>
{"".join(descriptions)}      <journalposttype>Utgående dokument</journalposttype>
      <journalstatus>Ekspedert</journalstatus>
    </registrering>
    <saksaar>{now.year}</saksaar>
    <sakssekvensnummer>1</sakssekvensnummer>
  </mappe>
</arkivmelding>
""".encode()
