"""The message store's tables: one SQLAlchemy :data:`metadata` for SQLite and PostgreSQL.

Conventions:

* every timestamp is a :class:`UtcDateTime`: timezone-aware UTC in Python, whatever the
  database keeps (SQLite has no time zones; PostgreSQL ``timestamptz``);
* surrogate keys are ``BigInteger`` on PostgreSQL and ``INTEGER`` on SQLite (where only an
  ``INTEGER PRIMARY KEY`` autoincrements), see :data:`BigId`;
* JSON lives in ``sa.JSON`` columns (lists of strings, small filter objects); the queue's
  ``payload`` is ``Text`` holding a JSON object, as the queue adapters expect;
* identifiers from the wire (message id, conversation id) are strings; a message is unique
  per ``(message_id, direction)``, so a message delivered between two organisations hosted
  here exists once outgoing and once incoming.

The queue tables (``outbox``, ``jobs``, ``processed_jobs``) are shared with
:mod:`adapters.queue`; their shape is a contract, change it only together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "BigId",
    "UtcDateTime",
    "api_clients",
    "as4_exchanges",
    "as4_refusals",
    "conversations",
    "jobs",
    "message_files",
    "messages",
    "metadata",
    "outbox",
    "processed_jobs",
    "routing_decisions",
    "status_events",
    "status_feed_acks",
    "subscriptions",
    "webhook_deliveries",
]

#: constraint names that are the same on every database, so migrations can refer to them
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: a 64-bit surrogate key that still autoincrements on SQLite
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime in Python, whatever the database keeps.

    Naive values given to it are taken to be UTC (``datetime.utcnow()`` style); everything read
    back is aware.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite compares the stored text: keep one form (naive UTC) so that ordering holds
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - raw text from a hand-written query
            value = datetime.fromisoformat(value)
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


def _id() -> sa.Column[int]:
    return sa.Column("id", BigId, primary_key=True, autoincrement=True)


# --------------------------------------------------------------------------- clients

api_clients = sa.Table(
    "api_clients",
    metadata,
    _id(),
    sa.Column("name", sa.String(200), nullable=False),
    #: lower-case hex SHA-256 of the token; the token itself is never stored
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    #: organisation numbers (9 digits) the client may send as and read for
    sa.Column("organisations", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
)

# --------------------------------------------------------------------------- messages

messages = sa.Table(
    "messages",
    metadata,
    _id(),
    #: the SBD's DocumentIdentification/InstanceIdentifier
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("conversation_id", sa.String(64), nullable=False),
    #: access_point.statuses.Direction
    sa.Column("direction", sa.String(8), nullable=False),
    #: participant id values as in the SBD (``0192:991825827``), and the bare orgnr / national
    #: id used for authorisation (the receiver of a letter is a person)
    sa.Column("sender", sa.String(100), nullable=False),
    sa.Column("sender_org", sa.String(20), nullable=False),
    sa.Column("receiver", sa.String(100), nullable=False),
    sa.Column("receiver_org", sa.String(20), nullable=False),
    #: access_point.statuses.ServiceIdentifier
    sa.Column("service_identifier", sa.String(10), nullable=False),
    sa.Column("process", sa.String(200), nullable=False),
    #: DocumentIdentification/Standard (the eFormidling document type)
    sa.Column("document_type", sa.String(500), nullable=False),
    #: the business message type (``arkivmelding``, ``digital`` ...), or the XML root name
    sa.Column("message_type", sa.String(60), nullable=False),
    sa.Column("sbd_json", sa.Text, nullable=False),
    #: SHA-256 hex of the canonical SBD: the same id with the same hash is the same message
    sa.Column("content_hash", sa.String(64), nullable=False),
    #: the latest status (access_point.statuses.MessageStatus)
    sa.Column("status", sa.String(24), nullable=False),
    #: True once a terminal status is recorded: the lifetime sweep skips it
    sa.Column("finished", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_update", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    #: when the sender asked to send it (POST /api/messages/out/{id})
    sa.Column("sent_at", UtcDateTime, nullable=True),
    #: inbox lock for peek/pop (incoming only)
    sa.Column("locked_until", UtcDateTime, nullable=True),
    sa.Column("locked_by", sa.String(64), nullable=True),
    sa.Column("acknowledged_at", UtcDateTime, nullable=True),
    sa.UniqueConstraint("message_id", "direction"),
    # inbox peek: INNKOMMENDE_MOTTATT (incoming, not yet acknowledged) for a receiver, oldest first
    sa.Index("ix_messages_inbox", "receiver_org", "status", "id"),
    sa.Index("ix_messages_sender_org", "sender_org", "direction", "id"),
    sa.Index("ix_messages_conversation_id", "conversation_id"),
    # lifetime sweep: unfinished messages by expiry
    sa.Index("ix_messages_expiry", "finished", "expires_at"),
)

message_files = sa.Table(
    "message_files",
    metadata,
    _id(),
    sa.Column(
        "message_pk",
        BigId,
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("mime_type", sa.String(200), nullable=False),
    sa.Column("title", sa.String(500), nullable=True),
    sa.Column("primary", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    #: the file store's random id (never derived from user input)
    sa.Column("storage_id", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    #: ``document`` (a business file) or ``package``: a document package received as it was
    #: sent (a signed ASiC-E, perhaps encrypted to the organisation), handed out as is on pop
    sa.Column("role", sa.String(16), nullable=False, server_default="document"),
    sa.UniqueConstraint("message_pk", "filename"),
)

#: integrasjonspunkt's Conversation: one per message and direction, with its status history
conversations = sa.Table(
    "conversations",
    metadata,
    _id(),
    sa.Column(
        "message_pk",
        BigId,
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("conversation_id", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("sender", sa.String(100), nullable=False),
    sa.Column("sender_identifier", sa.String(20), nullable=False),
    sa.Column("receiver", sa.String(100), nullable=False),
    sa.Column("receiver_identifier", sa.String(20), nullable=False),
    sa.Column("service_identifier", sa.String(10), nullable=False),
    sa.Column("process", sa.String(200), nullable=False),
    sa.Column("document_type", sa.String(500), nullable=False),
    sa.Column("message_reference", sa.String(200), nullable=True),
    sa.Column("message_title", sa.String(500), nullable=True),
    sa.Column("finished", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("expiry", UtcDateTime, nullable=True),
    sa.Column("last_update", UtcDateTime, nullable=False),
    sa.Index("ix_conversations_conversation_id", "conversation_id"),
    sa.Index("ix_conversations_message_id", "message_id"),
)

status_events = sa.Table(
    "status_events",
    metadata,
    _id(),
    sa.Column(
        "message_pk",
        BigId,
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("raw_receipt", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # a status is recorded once per message: a repeated receipt is a no-op
    sa.UniqueConstraint("message_pk", "status"),
)

#: the per-client pull feed (GET/DELETE /api/statuses/peek): what each client has taken
status_feed_acks = sa.Table(
    "status_feed_acks",
    metadata,
    sa.Column(
        "client_id",
        BigId,
        sa.ForeignKey("api_clients.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "status_event_id",
        BigId,
        sa.ForeignKey("status_events.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("acked_at", UtcDateTime, nullable=False),
)

# --------------------------------------------------------------------------- webhooks

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    _id(),
    sa.Column(
        "client_id",
        BigId,
        sa.ForeignKey("api_clients.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("push_endpoint", sa.String(2000), nullable=False),
    #: integrasjonspunkt's vocabulary: resource "messages", event "status" (or "all")
    sa.Column("resource", sa.String(40), nullable=False),
    sa.Column("event", sa.String(40), nullable=False),
    #: {"status": [...], "direction": "OUTGOING"|"INCOMING"|null, "serviceIdentifier": [...]}
    sa.Column("filter", sa.JSON, nullable=False),
    #: HMAC key for the signature header
    sa.Column("secret", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_subscriptions_client_id", "client_id"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    _id(),
    sa.Column(
        "subscription_id",
        BigId,
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column(
        "status_event_id",
        BigId,
        sa.ForeignKey("status_events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("subscription_id", "status_event_id"),
    sa.Index("ix_webhook_deliveries_due", "delivered_at", "next_attempt_at"),
)

# --------------------------------------------------------------------------- queue (contract)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=True),
    sa.Index("ix_outbox_published_at_id", "published_at", "id"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("available_at", UtcDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("dead", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_jobs_queue_finished_at_available_at", "queue", "finished_at", "available_at"),
)

#: AS4 exchanges with other access points, both ways: duplicate detection on the AS4 message
#: id and the SBD instance id, the receipt given (inbound, sent again to a duplicate) or the
#: references sent (outbound, what the receipt proved), and which access point it was
as4_exchanges = sa.Table(
    "as4_exchanges",
    metadata,
    _id(),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("as4_message_id", sa.String(255), nullable=False),
    sa.Column("sbd_instance_id", sa.String(64), nullable=False),
    sa.Column("message_pk", BigId, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=True),
    #: the other access point's name (its certificate's CN)
    sa.Column("peer", sa.String(200), nullable=False),
    #: inbound: the signed receipt given; outbound: the receipt received
    sa.Column("receipt", sa.LargeBinary, nullable=True),
    sa.Column("receipt_content_type", sa.String(200), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("direction", "as4_message_id"),
    sa.Index("ix_as4_exchanges_direction_sbd_instance_id", "direction", "sbd_instance_id"),
)

#: AS4 requests refused at ``POST /as4``: what ops need to answer "what did that peer send us
#: and why was it turned away" without the body (which may be hostile) being kept
as4_refusals = sa.Table(
    "as4_refusals",
    metadata,
    _id(),
    sa.Column("received_at", UtcDateTime, nullable=False),
    #: the peer's address as the socket saw it
    sa.Column("remote", sa.String(100), nullable=True),
    #: the AS4 message id when the request got far enough to name one
    sa.Column("as4_message_id", sa.String(255), nullable=True),
    #: the sending access point (its certificate's CN), when its signature was verified
    sa.Column("peer", sa.String(200), nullable=True),
    sa.Column("ebms_code", sa.String(16), nullable=False),
    sa.Column("error", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("content_type", sa.String(300), nullable=True),
    sa.Column("body_size", sa.BigInteger, nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=True),
    sa.Index("ix_as4_refusals_received_at", "received_at"),
)

#: why a message went where it went: which registry said what, and which rule chose the
#: channel (ops: "why did this go to print?"); a message re-routed later has several
routing_decisions = sa.Table(
    "routing_decisions",
    metadata,
    _id(),
    sa.Column(
        "message_pk", BigId, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("decided_at", UtcDateTime, nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    #: the decision record as JSON (facts, registries' answers; never a national id in clear)
    sa.Column("record", sa.Text, nullable=False),
    sa.Index("ix_routing_decisions_message_pk", "message_pk"),
)

processed_jobs = sa.Table(
    "processed_jobs",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("processed_at", UtcDateTime, nullable=False),
)
