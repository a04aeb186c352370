"""The message store on SQLite or PostgreSQL (SQLAlchemy 2, asyncio).

==================  ===========================================================================
``schema``          the tables (one ``metadata``), including the queue's ``outbox``/``jobs``
``engine``          ``create_engine`` (SQLite pragmas), ``Database`` (transactions), errors
``migrate``         Alembic from code: ``upgrade`` / ``upgrade_async`` / ``current_revision``
``repositories``    transactional building blocks: status recording, outbox rows, upserts
==================  ===========================================================================
"""
