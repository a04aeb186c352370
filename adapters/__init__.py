"""Every edge to a business system or a far party.

Will own: NOARK case systems (arkivmelding in and out), finance systems (EHF inbox as folder and
webhook), digital mailbox providers and their local stand-ins, the RabbitMQ broker adapter and
the database adapter. Driver errors are translated into the ``sbdh.errors`` tree here.
"""
