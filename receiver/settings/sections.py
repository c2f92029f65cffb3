"""Settings sections of the receiver itself: listener, database timeouts, webhook auth, intake,
Prometheus, Alertmanager, Watchdog, delivery, retention and metrics (the UI: ui.py)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator

from receiver.model.titles import TitleTemplate
from receiver.settings.base import _Section


class ListenSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(9099, ge=0, le=65535)
    workers: int = Field(2, ge=1, le=64)
    # per worker process: threads running requests whose body has fully arrived
    threads: int = Field(2, ge=1, le=64)
    # a request whose body has not fully arrived by then gets 408 (slow or stalled clients)
    request_timeout_seconds: float = Field(10, gt=0, le=300)
    # reverse proxies in front that append X-Forwarded-For (and set -Proto, -Host): the client
    # address (login limits, the timeline's "from") is then the one the nearest proxy saw
    proxy_hops: int = Field(0, ge=0, le=5)


class DatabaseSettings(_Section):
    """Bounds on every database call (the URL itself is the top-level ``database_url``).

    The defaults leave room for the largest webhook (5,000 alerts: its longest statement took
    0.8 s on Postgres, ``bench/large_webhooks.py``) and answer 503 within about 6 s when the
    database stops answering.
    """

    # a statement running longer is cancelled (Postgres statement_timeout; SQLite: interrupted
    # by a progress handler); the client also gives up on a connection whose statement has had
    # no answer this long plus a second (a frozen server cancels nothing) and closes it
    statement_timeout_seconds: float = Field(5, gt=0, le=3600)
    # waits for a row or table lock (Postgres lock_timeout), for SQLite's write lock (its busy
    # timeout) and for the turn to write beside it
    lock_timeout_seconds: float = Field(3, gt=0, le=3600)
    # Postgres ends a session left idle inside a transaction this long, releasing its locks
    idle_in_transaction_timeout_seconds: float = Field(10, gt=0, le=3600)
    # Postgres: opening a connection (libpq counts whole seconds, at least 2)
    connect_timeout_seconds: int = Field(5, ge=2, le=300)
    # waiting for a free connection of the process's pool
    pool_timeout_seconds: float = Field(5, gt=0, le=300)
    # each statement of retention (the worker's hourly prune, `receiver db prune`), which may
    # delete a day of payloads at once; migrations have no limit
    maintenance_timeout_seconds: float = Field(300, gt=0, le=86400)


class BasicAuthSettings(_Section):
    username: str = Field(min_length=1)
    password: SecretStr


class AuthSettings(_Section):
    allow_unauthenticated: bool = False
    bearer_tokens: list[SecretStr] = Field(default_factory=list)
    basic_auth: BasicAuthSettings | None = None

    @field_validator("bearer_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.replace("\n", ",").split(",") if t.strip()]
        if isinstance(value, list) and any(isinstance(t, str) and not t.strip() for t in value):
            raise ValueError("tokens must not be empty")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.bearer_tokens) or self.basic_auth is not None


class IntakeSettings(_Section):
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # beyond these a webhook is refused with 400 naming the field (and kept as rejected)
    max_alerts: int = Field(5000, ge=1)
    max_labels: int = Field(128, ge=1)
    max_label_value_length: int = Field(4096, ge=64)
    max_annotation_value_length: int = Field(65536, ge=64)
    rejected_keep: int = Field(1000, ge=0)
    rejected_body_bytes: int = Field(64 * 1024, ge=0)
    raw_retention_days: float = Field(30, gt=0)
    # new incidents' titles (receiver/model/titles.py); None: the summary, else the alertname
    title_template: str | None = Field(None, min_length=1, max_length=1000)

    @field_validator("title_template")
    @classmethod
    def _valid_template(cls, value: str | None) -> str | None:
        if value is not None:
            TitleTemplate.parse(value)  # ValueError names the placeholder
        return value

    @property
    def title(self) -> TitleTemplate | None:
        return TitleTemplate.parse(self.title_template) if self.title_template else None


class RetentionSettings(_Section):
    """Retention of whole incidents (raw payloads have their own: intake.raw_retention_days)."""

    # resolved incidents older than this go, with every row only they use; None keeps them.
    # At least a day: the intake's rules read recent episodes (flapping, late resolves).
    incident_days: float | None = Field(None, ge=1)
    batch: int = Field(200, ge=1, le=10000)  # incidents per transaction (one pass)
    passes_per_run: int = Field(25, ge=1)  # passes per hourly worker run; the rest waits
    event_days: float = Field(7, gt=0)  # event-recorder events last seen before this go


class FlappingSettings(_Section):
    threshold: int = Field(3, ge=2)
    window_minutes: float = Field(30, gt=0)
    hold_down_minutes: float = Field(15, ge=0)


class PrometheusSettings(_Section):
    """Where the worker queries the GPU and queue context; no URL disables it."""

    url: str | None = Field(None, pattern=r"^https?://")
    timeout_seconds: float = Field(0.5, gt=0, le=30)

    @field_validator("url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    budget_seconds: float = Field(1.5, gt=0, le=60)
    cache_seconds: float = Field(30, ge=0)
    bearer_token: SecretStr | None = None
    basic_auth: BasicAuthSettings | None = None
    ca_bundle: str | None = None
    tls_skip_verify: bool = False


class AlertmanagerSettings(_Section):
    """Alertmanager's API, asked which alerts are still active (lost resolves; see reconcile)."""

    # every Alertmanager of the cluster (an HA pair: both); none turns reconciliation off
    urls: list[Annotated[str, Field(pattern=r"^https?://")]] = Field(default_factory=list)
    timeout_seconds: float = Field(5, gt=0, le=60)
    reconcile_interval_seconds: float = Field(60, gt=0)
    # an alert Alertmanager no longer reports is "stale"; after this long it is resolved
    stale_grace_minutes: float = Field(10, ge=0)
    # alerts younger than this are not judged (Alertmanager may not have processed them yet)
    min_age_seconds: float = Field(120, ge=0)
    bearer_token: SecretStr | None = None
    basic_auth: BasicAuthSettings | None = None
    ca_bundle: str | None = None
    tls_skip_verify: bool = False

    @field_validator("urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):  # RECEIVER_ALERTMANAGER__URLS=http://am-0:9093,http://am-1:9093
            return [u.strip() for u in value.split(",") if u.strip()]
        return value


class WatchdogSettings(_Section):
    """The dead man's switch: Alertmanager's always-firing alert must keep arriving."""

    # alerts with this name never open incidents; they only prove the pipeline works ("" = off)
    alertname: str = "Watchdog"
    # open an incident when none has arrived for this long (0: never; Alertmanager re-sends it
    # every repeat_interval, so give it a few of those)
    missing_after_minutes: float = Field(0, ge=0)
    # the labels of the incident it opens (routed like any other alert)
    labels: dict[str, str] = Field(
        default_factory=lambda: {"alertname": "WatchdogMissing", "severity": "critical"}
    )

    @property
    def enabled(self) -> bool:
        return bool(self.alertname) and self.missing_after_minutes > 0


class DeliverySettings(_Section):
    """The outbox: retries with exponential backoff and jitter until ``max_age_minutes``."""

    max_age_minutes: float = Field(360, gt=0)
    backoff_initial_seconds: float = Field(2, gt=0)
    backoff_max_seconds: float = Field(300, gt=0)
    # during a receiver's outage one delivery per worker probes it this often (or at the
    # vendor's Retry-After), the others back off; its first success makes them all due
    probe_seconds: float = Field(2, gt=0)
    coalesce_seconds: float = Field(2, ge=0)
    slack_min_interval_seconds: float = Field(1.0, ge=0)
    # render and record every delivery without sending it (staging, or shadowing Alertmanager's
    # own integrations before switching over)
    dry_run: bool = False


class MetricsSettings(_Section):
    """Who may scrape the receiver's own metrics (alertnames and receiver names are in them)."""

    # GET /metrics on listen.port only with the webhook credentials (Prometheus's
    # authorization / basic_auth settings send them)
    require_webhook_auth: bool = False
    # or serve them on an address of their own (e.g. one only Prometheus reaches) and answer
    # 404 on listen.port: `receiver serve` and the image's gunicorn serve it from the master
    port: int | None = Field(None, ge=1, le=65535)
    address: str = "127.0.0.1"
