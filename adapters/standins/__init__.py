"""Local stand-ins for the far parties, speaking their real protocols over real sockets.

=================  ============================================================================
``dns``            the SML: an authoritative DNS server answering U-NAPTR (``Meta:SMP``) queries
``krr``            KRR, the contact and reservation register (``/rest/v1/personer``,
                   ``/rest/v2/printSertifikat``), loaded from a JSON register file
``krr_generate``   a deterministic generator of realistic KRR register files
``ocsp``           the CAs' OCSP responder (``POST /ocsp``) and CRL server (``/crl/<ca>.crl``)
                   for the development PKI, with a revocation list changed at run time
=================  ============================================================================

The clients in :mod:`routing` talk to these exactly as to the real services: the stand-in
replaces the far end, never the client.
"""
