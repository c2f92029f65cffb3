"""Every error answered as JSON, each domain error mapped to one status code, in one place."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from markupsafe import escape
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from receiver.model.errors import FilterTooCostly, InvalidPayload, StorageUnavailable
from receiver.store.health import describe

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as ``{"error": code, "message": ..., "errors": [...]}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors, self.headers = errors, headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def invalid_payload(exc: InvalidPayload) -> ApiError:
    count = len(exc.errors)
    message = f"not an Alertmanager webhook: {count} problem{'s' if count != 1 else ''}"
    if exc.errors and exc.errors[0]["field"] == "(body)":
        message = exc.errors[0]["message"]
    return ApiError(400, "invalid_payload", message, exc.errors)


def too_costly(exc: FilterTooCostly) -> ApiError:
    errors = [{"field": exc.field, "message": str(exc)}]
    return ApiError(400, "invalid_query", "invalid query parameters", errors)


def _wants_html() -> bool:
    """People in a browser get a page; the API and Alertmanager always get JSON."""
    if request.path.startswith("/api/") or request.path in ("/healthz", "/readyz", "/metrics"):
        return False
    return request.accept_mimetypes.accept_html


def init_app(app: Flask) -> None:
    """Register the JSON error handlers."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> ResponseReturnValue:
        return jsonify(exc.body()), exc.status, exc.headers

    @app.errorhandler(InvalidPayload)
    def _invalid(exc: InvalidPayload) -> ResponseReturnValue:
        return _api_error(invalid_payload(exc))

    @app.errorhandler(FilterTooCostly)
    def _too_costly(exc: FilterTooCostly) -> ResponseReturnValue:
        return _api_error(too_costly(exc))

    @app.errorhandler(StorageUnavailable)
    @app.errorhandler(SQLAlchemyError)  # a read (API, UI) that the database failed
    def _unavailable(exc: StorageUnavailable | SQLAlchemyError) -> ResponseReturnValue:
        reason = describe(exc) if isinstance(exc, SQLAlchemyError) else exc
        log.error("storage unavailable: %s", reason)
        error = ApiError(
            503,
            "storage_unavailable",
            "database unavailable; retry later",
            headers={"Retry-After": "5"},
        )
        return _api_error(error)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        code = (exc.name or "error").lower().replace(" ", "_")
        if _wants_html():
            page = f"<!doctype html><title>{escape(exc.name)}</title><h1>{escape(exc.name)}</h1>"
            return page + f"<p>{escape(exc.description or '')}</p>", exc.code or 500
        return jsonify({"error": code, "message": exc.description}), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unexpected error")
        if request.path.startswith("/api/v1/alertmanager"):
            receiver = app.extensions["receiver"]
            receiver.metrics.webhooks.labels("internal_error", "").inc()
        return jsonify({"error": "internal_error", "message": "unexpected error; see logs"}), 500
