"""Fixtures for interoperability tests against the independent ``as4`` peer.

``as4_peer_python``  (tests/conftest.py) the peer environment's python (made once, cached;
                     skipped locally when it cannot be made, a failure in CI);
``as4_peer``         :class:`~tests.interop.harness.As4Peer`, the peer's command line;
``as4_peer_pki``     the session's development PKI as PEM files (:class:`PeerPki`);
``as4_peer_server``  a running ``as4_peer.py serve`` as ``PNO000002`` (:class:`PeerServer`),
                     trusting the development PKI, writing received SBDs to ``tmp_path``.

Tests that use them carry the ``interop`` marker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sbdh.pki import DevPki
from tests.interop.harness import PEER_AP, As4Peer, PeerPki, PeerServer, write_peer_pki


@pytest.fixture(scope="session")
def as4_peer(as4_peer_python: Path) -> As4Peer:
    return As4Peer(as4_peer_python)


@pytest.fixture(scope="session")
def as4_peer_pki(tmp_path_factory: pytest.TempPathFactory, dev_pki: DevPki) -> PeerPki:
    return write_peer_pki(tmp_path_factory.mktemp("as4-peer-pki"), dev_pki)


@pytest.fixture
def as4_peer_server(
    as4_peer: As4Peer, as4_peer_pki: PeerPki, tmp_path: Path
) -> Iterator[PeerServer]:
    with as4_peer.serve(
        identity=as4_peer_pki.party(PEER_AP), trust=as4_peer_pki.trust, out=tmp_path / "inbox"
    ) as server:
        yield server
