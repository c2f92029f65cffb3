"""SQLAlchemy 2 typed models with a naming convention (Alembic keeps constraint names stable)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonDoc = JSON().with_variant(JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the receiver stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    if TYPE_CHECKING:  # every model here is one Table (SQLAlchemy types it as any FromClause)
        __table__: ClassVar[Table]


class AlertGroup(Base):
    """A notification group: (receiver, groupKey). groupKey is unbounded; its sha256 is indexed."""

    __tablename__ = "alert_groups"
    __table_args__ = (UniqueConstraint("receiver", "group_key_sha256"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    receiver: Mapped[str] = mapped_column(String(255))
    group_key: Mapped[str] = mapped_column(Text)
    group_key_sha256: Mapped[str] = mapped_column(String(64))
    group_key_derived: Mapped[bool] = mapped_column(Boolean, default=False)
    group_labels: Mapped[dict[str, str]] = mapped_column(JsonDoc)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Incident(Base):
    """What a person handles: by default one group episode, holding its alert episodes."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_opened_at_id", "opened_at", "id"),
        Index("ix_incidents_status_opened_at", "status", "opened_at"),
        # The UI's list, its counts per status and the overview (docs/benchmarks.md says which
        # query each serves): the filtered column first, then what the counts read, so counting
        # never touches the wide rows.
        Index("ix_incidents_status_severity", "status", "severity", "acknowledged_at", "id"),
        Index(
            "ix_incidents_severity_opened_at", "severity", "opened_at", "status", "acknowledged_at"
        ),
        Index(
            "ix_incidents_alertname_opened_at",
            "alertname",
            "opened_at",
            "status",
            "acknowledged_at",
        ),
        Index(
            "ix_incidents_receiver_opened_at", "receiver", "opened_at", "status", "acknowledged_at"
        ),
        Index(
            "ix_incidents_opened_at_resolved_at",
            "opened_at",
            "resolved_at",
            "status",
            "acknowledged_at",
            "flapping",
            "alertname",
        ),
        # The text filter (search_text LIKE '%...%') has no portable index: Postgres gets a
        # trigram index, SQLite a narrow copy of what the list and its counts read, to scan
        # instead of the wide rows. Each is empty (WHERE false) on the other database.
        Index(
            "ix_incidents_search_text_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            sqlite_where=false(),
        ),
        Index(
            "ix_incidents_text_scan",
            "opened_at",
            "id",
            "search_text",
            "status",
            "acknowledged_at",
            postgresql_where=false(),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("alert_groups.id"), index=True)
    # Equals group_id while the incident is open, NULL once resolved: the unique constraint is
    # the final guard that a group never has two open incidents, whatever races.
    open_group_id: Mapped[int | None] = mapped_column(Id, unique=True)
    status: Mapped[str] = mapped_column(String(16))
    receiver: Mapped[str] = mapped_column(String(255))
    alertname: Mapped[str] = mapped_column(String(255))
    severity: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, str]] = mapped_column(JsonDoc)
    annotations: Mapped[dict[str, str]] = mapped_column(JsonDoc)
    external_url: Mapped[str | None] = mapped_column(Text)
    search_text: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    notification_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    episode_count: Mapped[int] = mapped_column(Integer, default=0)
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    flap_count: Mapped[int] = mapped_column(Integer, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_by_resolve: Mapped[bool] = mapped_column(Boolean, default=False)
    # the first runbook among its alerts; flagged when any alert has none
    runbook_url: Mapped[str | None] = mapped_column(Text)
    guidance: Mapped[str | None] = mapped_column(Text)
    runbook_missing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    # the labels of the Alertmanager route that sent it (0.34+); those no alert carries are in
    # ``labels`` too
    route_labels: Mapped[dict[str, str]] = mapped_column(
        JsonDoc, default=dict, server_default=text("'{}'")
    )


class IncidentLabel(Base):
    """Every (name, value) carried by any alert of an incident: for label matcher filters."""

    __tablename__ = "incident_labels"
    __table_args__ = (
        # label filters: the incidents with a label, from the index alone
        Index("ix_incident_labels_name_value_incident_id", "name", "value", "incident_id"),
    )

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(512), primary_key=True)


class AlertEpisode(Base):
    """One firing of one alert series: (group, fingerprint, startsAt)."""

    __tablename__ = "alert_episodes"
    __table_args__ = (
        UniqueConstraint("group_id", "fingerprint", "starts_at"),
        # the overview: noisiest alerts, and alerts without a runbook (also `runbooks missing`)
        Index("ix_alert_episodes_starts_at", "starts_at", "alertname", "incident_id"),
        Index(
            "ix_alert_episodes_runbook_missing",
            "first_received_at",
            "alertname",
            "incident_id",
            postgresql_where=text("runbook_url IS NULL"),
            sqlite_where=text("runbook_url IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("alert_groups.id"))
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    fingerprint_derived: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    # how it ended: resolved | group_resolved | superseded (a newer episode of the series began)
    resolution: Mapped[str | None] = mapped_column(String(32))
    seen_firing: Mapped[bool] = mapped_column(Boolean, default=True)
    alertname: Mapped[str] = mapped_column(String(255))
    labels: Mapped[dict[str, str]] = mapped_column(JsonDoc)
    annotations: Mapped[dict[str, str]] = mapped_column(JsonDoc)
    generator_url: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    seen_count: Mapped[int] = mapped_column(Integer, default=1)
    stale_firing_count: Mapped[int] = mapped_column(Integer, default=0)
    # while firing here: since when Alertmanager no longer reports it active (a lost resolve?)
    absent_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    runbook_url: Mapped[str | None] = mapped_column(Text)
    runbook_source: Mapped[str | None] = mapped_column(String(16))  # annotation | catalogue
    guidance: Mapped[str | None] = mapped_column(Text)
    # GPU and queue context, evaluated by the worker: none | pending | running | done
    context_state: Mapped[str] = mapped_column(
        String(16), default="none", server_default="none", index=True
    )
    context_claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    context: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonDoc)


class Heartbeat(Base):
    """The last arrival of an always-firing alert (the Watchdog): proof the pipeline works."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    receiver: Mapped[str | None] = mapped_column(String(255))
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class IncidentEvent(Base):
    """The incident's timeline: state changes only; repeats are counted, not listed."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    receipt_id: Mapped[int | None] = mapped_column(Id)


class PayloadBody(Base):
    """Raw request bodies, stored once per distinct content (repeats are byte-identical)."""

    __tablename__ = "payload_bodies"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    first_received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebhookReceipt(Base):
    """One accepted webhook request and what it did."""

    __tablename__ = "webhook_receipts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    receiver: Mapped[str] = mapped_column(String(255))
    group_id: Mapped[int] = mapped_column(ForeignKey("alert_groups.id"), index=True)
    body_sha256: Mapped[str] = mapped_column(ForeignKey("payload_bodies.sha256"), index=True)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    external_url: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    notification_reason: Mapped[str | None] = mapped_column(String(64))  # Alertmanager 0.32+


class IncidentReceipt(Base):
    """Which accepted requests touched which incident."""

    __tablename__ = "incident_receipts"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    receipt_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_receipts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class RejectedRequest(Base):
    """A bounded log of rejected requests (newest kept) for debugging senders."""

    __tablename__ = "rejected_requests"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64))
    errors: Mapped[list[dict[str, str]]] = mapped_column(JsonDoc)
    receiver: Mapped[str | None] = mapped_column(String(255))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(255))
    body_size: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)


class Delivery(Base):
    """One notification to send (the outbox): written in the intake transaction, sent by a worker.

    ``idempotency_key`` = incident:receiver:action:seq, unique: the same change is never queued
    twice, and a retried send carries the same key.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        # The claim takes the oldest due pending deliveries: it walks them in id order and
        # reads due_at from the index, never the sent history nor a sort of every due one
        # (docs/benchmarks.md, "Outbox claim"; migration 0011). SQLite walks (state, id,
        # due_at); Postgres's planner would walk the primary key through the history instead,
        # so it gets a partial index of the pending ones (empty on SQLite, WHERE false).
        Index("ix_deliveries_state_id_due_at", "state", "id", "due_at"),
        Index(
            "ix_deliveries_pending_id_due_at",
            "id",
            "due_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=false(),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    receiver: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # pagerduty | slack
    action: Mapped[str] = mapped_column(String(16))  # trigger | update | resolve
    seq: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    # pending | sending | sent | dead | cancelled
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # the W3C trace context of the webhook that caused it: its attempts log under that trace
    traceparent: Mapped[str | None] = mapped_column(String(55))


class DeliveryAttempt(Base):
    """Every try of a delivery: when, what came back, how long it took (secrets redacted)."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | retry | give_up
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)


class ChannelPacing(Base):
    """When a Slack channel takes its next post: one row per channel, shared by every worker
    process, so together they never post to a channel faster than the pacing allows."""

    __tablename__ = "channel_pacing"

    channel: Mapped[str] = mapped_column(String(255), primary_key=True)
    next_post_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # the turn given to the last post held back for the channel: the next one queues after it
    queued_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class NotificationThread(Base):
    """What a receiver knows of an incident: the PagerDuty dedup key, the Slack channel and ts."""

    __tablename__ = "notification_threads"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    receiver: Mapped[str] = mapped_column(String(255), primary_key=True)
    external: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    last_event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), default=0
    )
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UiSession(Base):
    """A UI login. The cookie carries a random token and this row its hash, so deleting a
    user's rows ends their sessions on every replica at once."""

    __tablename__ = "ui_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(255), index=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | responder
    via: Mapped[str] = mapped_column(String(16))  # password | oidc
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))


class LoginThrottle(Base):
    """Failed logins of one key ("user:NAME" or "addr:ADDRESS") in its current window."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AlertmanagerEvent(Base):
    """One event of Alertmanager's event recorder (0.33+): why an alert was muted, or not."""

    __tablename__ = "alertmanager_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # AmEvent.digest
    kind: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)  # the first time seen
    last_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)  # a repeated mute: the last
    count: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    instance: Mapped[str | None] = mapped_column(String(255))
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    fingerprints: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    labels: Mapped[dict[str, str]] = mapped_column(JsonDoc, default=dict)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
