"""JSON API: webhook intake, incident reads, health and metrics."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from receiver import fixture
from receiver.bootstrap import Container
from receiver.intake import parse_webhook
from receiver.metrics import exposition
from receiver.model.am_events import parse_events
from receiver.model.errors import InvalidPayload, StorageUnavailable
from receiver.model.snapshot_json import incident_json
from receiver.service import RawRequest, handle_webhook, record_alertmanager_events
from receiver.store import health, migrate
from receiver.store.export import IncidentNotFound, PayloadsPruned
from receiver.store.gauges import StoreGauges, read_gauges
from receiver.store.rejected import Rejection, record_rejection
from receiver.web.access import Access, allow
from receiver.web.errors import ApiError, invalid_payload
from receiver.web.filters import parse_list_query

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__)
JSON_TYPES = {"application/json"}
MAX_RECEIVER_NAME = 255


def container() -> Container:
    return current_app.extensions["receiver"]


@bp.post("/api/v1/alertmanager", defaults={"name": None})
@bp.post("/api/v1/alertmanager/<name>")
@allow(Access.WEBHOOK)
def receive_webhook(name: str | None) -> ResponseReturnValue:
    """Authenticate, validate, store in one transaction, then answer 200 with a summary."""
    c = container()
    started = time.perf_counter()
    if name is not None and len(name) > MAX_RECEIVER_NAME:
        raise _reject(c, name, ApiError(400, "invalid_receiver", "receiver name too long"))
    if name is not None and "\x00" in name:
        message = "receiver name in the path must not contain NUL characters"
        raise _reject(c, name, ApiError(400, "invalid_receiver", message))
    try:
        body = _json_body(c.settings.intake.max_body_bytes)
    except ApiError as error:  # a body over the limit is not kept
        raise _reject(c, name, error, keep_body=error.status != 413) from None
    try:
        notification = parse_webhook(body, name, c.intake_limits)
    except InvalidPayload as exc:
        raise _reject(c, name, invalid_payload(exc)) from None
    raw = RawRequest(
        body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
        remote_addr=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
    )
    try:
        result = handle_webhook(c.uow, notification, raw, c.clock, c.intake_rules)
    except InvalidPayload as exc:  # valid JSON the database cannot hold: retrying never helps
        raise _reject(c, name, invalid_payload(exc)) from None
    except StorageUnavailable:
        c.metrics.webhooks.labels("unavailable", notification.receiver).inc()
        raise
    c.metrics.webhooks.labels("stored", notification.receiver).inc()
    for outcome, count in result.counts.items():
        if count:
            c.metrics.alerts.labels(outcome).inc(count)
    for alertname in result.missing_runbooks:
        c.metrics.runbook_missing.labels(alertname).inc()
    c.metrics.intake_seconds.observe(time.perf_counter() - started)
    return jsonify(result.as_json()), 200


@bp.post("/api/v1/event-recorder")
@allow(Access.WEBHOOK)
def receive_events() -> ResponseReturnValue:
    """Alertmanager 0.33's event recorder (webhook output): one event or a list; 200 once
    stored, 400 naming the problem, 503 while the database is down (the output retries)."""
    c = container()
    body = _json_body(c.settings.intake.max_body_bytes)
    try:
        events = parse_events(body)
    except InvalidPayload as exc:
        message = exc.errors[0]["message"] if len(exc.errors) == 1 else str(exc)
        raise ApiError(400, "invalid_event", message, exc.errors) from None
    stored = record_alertmanager_events(c.uow, events, c.clock)
    return jsonify({"events": stored}), 200


def _json_body(limit: int) -> bytes:
    """The request's JSON body as sent (no Content-Encoding), at most ``limit`` bytes; else the
    ApiError to answer (413 too large, 415 not JSON or encoded)."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        message = f"Content-Encoding {encoding[:32]} is not supported: send the JSON body as is"
        raise ApiError(415, "unsupported_media_type", message)
    if request.mimetype not in JSON_TYPES:
        shown = request.mimetype or "none"
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type must be application/json, got {shown}"
        )
    try:
        # MAX_CONTENT_LENGTH is limit + 1, so a chunked body over the limit shows as too long
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise _too_large(limit) from None
    if len(body) > limit:
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body exceeds the limit of {limit} bytes")


def _reject(c: Container, name: str | None, error: ApiError, keep_body: bool = True) -> ApiError:
    """Count, log and record a rejected request (bounded table), then hand back the error."""
    c.metrics.webhooks.labels(error.code, name or "").inc()
    fields = [e["field"] for e in error.errors or []][:20]
    log.warning(
        "rejected webhook from %s: %s %s %s", request.remote_addr, error.status, error.code, fields
    )
    intake = c.settings.intake
    if intake.rejected_keep == 0:
        return error
    body = request.get_data(cache=True)[: intake.rejected_body_bytes] if keep_body else None
    rejection = Rejection(
        received_at=c.clock(),
        status_code=error.status,
        reason=error.code,
        errors=error.errors or [{"field": "(request)", "message": error.message}],
        receiver=(name or "").replace("\x00", "")[:255] or None,
        remote_addr=request.remote_addr,
        content_type=(request.content_type or "")[:255] or None,
        body_size=request.content_length,
        body=body,
    )
    try:
        with c.uow() as uow:
            record_rejection(uow, rejection, keep=intake.rejected_keep)
            uow.commit()
    except SQLAlchemyError as exc:
        log.error("could not record rejected request: %s", type(exc).__name__)
    return error


@bp.get("/api/v1/incidents")
@allow(Access.READ)
def list_incidents() -> ResponseReturnValue:
    """Incidents newest first, filtered by query parameters; cursor pagination."""
    query = parse_list_query(request.args, default_limit=50)
    if query.errors:
        raise ApiError(400, "invalid_query", "invalid query parameters", query.errors)
    page = container().queries.list_incidents(query.filter, limit=query.limit, cursor=query.cursor)
    return jsonify(page)


@bp.get("/api/v1/incidents/<row_id:incident_id>")
@allow(Access.READ)
def get_incident(incident_id: int) -> ResponseReturnValue:
    queries = container().queries
    snapshot = queries.snapshot(incident_id)
    if snapshot is None:
        raise ApiError(404, "not_found", f"no incident {incident_id}")
    mutes, groupings = queries.mutes(snapshot), queries.groupings(snapshot)
    return jsonify({**incident_json(snapshot), "mutes": mutes, "groupings": groupings})


@bp.get("/api/v1/incidents/<row_id:incident_id>/fixture")
@allow(Access.READ)
def get_incident_fixture(incident_id: int) -> ResponseReturnValue:
    """The incident's raw requests as one replay fixture (what ``receiver export`` writes)."""
    c = container()
    try:
        text = fixture.export(c.engine, incident_id, c.flap_policy)
    except IncidentNotFound:
        raise ApiError(404, "not_found", f"no incident {incident_id}") from None
    except PayloadsPruned as exc:
        raise ApiError(410, "payloads_pruned", str(exc)) from None
    disposition = f'attachment; filename="incident-{incident_id}.fixture.json"'
    return Response(text, mimetype="application/json", headers={"Content-Disposition": disposition})


@bp.get("/api/v1/payloads/<row_id:receipt_id>")
@allow(Access.READ)
def get_payload(receipt_id: int) -> ResponseReturnValue:
    """The exact bytes of an accepted webhook, while retained: a replayable fixture."""
    body = container().queries.payload_body(receipt_id)
    if body is None:
        raise ApiError(404, "not_found", f"no payload {receipt_id} (never stored or pruned)")
    return Response(body, mimetype="application/json")


@bp.get("/healthz")
@allow(Access.PUBLIC)
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@allow(Access.PUBLIC)
def readyz() -> ResponseReturnValue:
    """Ready when the database answers within its timeouts, takes writes, and its schema is at
    the head revision."""
    head = current_app.config["RECEIVER_HEAD_REVISION"]
    engine = container().engine
    try:
        current = migrate.current_revision(engine)
        unwritable = health.why_unwritable(engine)
    except SQLAlchemyError as exc:
        return _not_ready(f"database unavailable: {health.describe(exc)}")
    if unwritable is not None:
        return _not_ready(unwritable)
    if current == head:
        return jsonify({"status": "ready", "schema": current})
    if current is not None and not migrate.is_known(current):
        # a newer release migrated first (rolling upgrade): migrations only add, keep serving
        return jsonify({"status": "ready", "schema": current, "note": f"newer than {head}"})
    return _not_ready(f"schema at {current}, expected {head}: run `receiver db upgrade`")


def _not_ready(reason: str) -> ResponseReturnValue:
    body: dict[str, Any] = {"status": "unavailable", "reason": reason}
    return jsonify(body), 503


@bp.get("/metrics")
@allow(Access.METRICS)
def metrics() -> ResponseReturnValue:
    c = container()

    def gauges() -> StoreGauges:
        return read_gauges(c.engine, c.clock())

    try:
        text = exposition(c.metrics, gauges)
    except SQLAlchemyError as exc:  # the counters still tell what happened
        log.warning("metrics without store gauges, database unavailable: %s", type(exc).__name__)
        text = exposition(c.metrics, None)
    return Response(text, mimetype=CONTENT_TYPE_LATEST)
