"""The participant registry.

Will own: the SMP document formats (Peppol busdox, OASIS BDXR SMP 1.0 and OASIS SMP 2.0), signed
SMP responses, and the local SMP/ELMA server with its admin API that the embedded network and the
two-access-point setup use, so that routing between Budstikke instances is discovered.
"""
