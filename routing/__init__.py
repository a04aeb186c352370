"""Where a message goes.

Will own: the SML (DNS U-NAPTR) lookup, the SMP client for the Peppol, OASIS BDXR 1.0 and
OASIS SMP 2.0 formats, the KRR (contact and reservation register) client, the capability cache,
and the routing policy (organisation -> AS4 endpoint; person -> digital mailbox or print, with
fallback rules). Depends on ``sbdh`` and ``elma`` only.
"""
