"""Security headers on every answer: a strict CSP, no framing, no sniffing, no caching of data.

The pages load only this app's own script and stylesheet and draw charts as inline SVG with
plain attributes, so the policy needs no 'unsafe-inline'. TLS (and HSTS) belong to the proxy
in front; the session cookie is Secure unless ``ui.cookie_secure`` is turned off for local use.
"""

from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def init_app(app: Flask) -> None:
    """Add the headers to every response of ``app``."""

    @app.after_request
    def _secure(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.path.startswith("/ui-static/"):
            # incident data and pages behind a login: never kept by browsers or shared caches
            response.headers.setdefault("Cache-Control", "no-store")
        return response
