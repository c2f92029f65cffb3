"""Gunicorn settings for the receiver's web processes.

    gunicorn -c /app/deploy/gunicorn.conf.py receiver.wsgi:app

The address and the number of workers are the receiver's own settings (``listen.host``,
``listen.port``, ``listen.workers``: the YAML file named by ``RECEIVER_CONFIG``, overridden by
``RECEIVER_LISTEN__HOST`` and friends), so ``receiver serve`` and this file bind the same
address. The image sets ``RECEIVER_LISTEN__HOST=0.0.0.0``. Anything below can still be
overridden for one run: ``GUNICORN_CMD_ARGS="--workers 4"`` or a command-line option wins over
this file.

Logs: one JSON object per request on stdout (access log), gunicorn's and the application's own
messages on stderr. Successful readiness and liveness probes (``GET /healthz``, ``GET /readyz``
answered 2xx) are not logged; a failing probe is.
"""

from __future__ import annotations

import json
import os

from gunicorn.glogging import Logger

from receiver.settings import ConfigError, load_settings

try:
    # Webhook credentials are the application's business (it refuses to start without them);
    # here only the listen section is wanted.
    _settings = load_settings(require_auth=False)
except ConfigError as exc:
    raise SystemExit(f"gunicorn.conf.py: {exc}") from None

_listen = _settings.listen
_host = f"[{_listen.host}]" if ":" in _listen.host else _listen.host

bind = [f"{_host}:{_listen.port}"]
workers = _listen.workers
worker_class = "sync"  # each request is one short database transaction; no network inside
loglevel = _settings.log_level.lower()

# A request that takes longer than this kills its worker (the database is then unreachable or
# locked; Alertmanager retries the webhook).
timeout = 30
# On SIGTERM (Kubernetes stops a pod) workers finish the requests they hold for up to this long.
# Keep it below the pod's terminationGracePeriodSeconds (30 by default).
graceful_timeout = 20
# Requests on an idle kept-alive connection from a load balancer or ingress.
keepalive = 5

# Workers import the application themselves (no preload): every worker builds its own database
# engine, none is inherited across fork.
preload_app = False

# The worker heartbeat file: memory-backed, and writable with a read-only root filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Gunicorn 25+ opens a control socket under $HOME; the image's root filesystem is read-only and
# nothing here uses gunicornc.
control_socket_disable = True

# X-Forwarded-Proto and friends are believed only from these addresses (gunicorn's default
# reads FORWARDED_ALLOW_IPS, else 127.0.0.1 and ::1). Behind an ingress controller or load
# balancer, set FORWARDED_ALLOW_IPS to its addresses or CIDR (e.g. the pod network); "*" only
# when nothing but that proxy can reach the pod (a NetworkPolicy). The receiver needs no
# forwarded header to work: links in notifications come from `public_url`.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

accesslog = "-"
errorlog = "-"
access_log_format = (
    '{"time": "%(t)s", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", '
    '"query": "%(q)s", "status": %(s)s, "bytes": "%(b)s", "duration_s": %(L)s, '
    '"forwarded_for": "%({x-forwarded-for}i)s", "user_agent": "%(a)s", "pid": "%(p)s"}'
)

PROBE_PATHS = frozenset({"/healthz", "/readyz"})


class _JsonAtoms(dict):
    """Access log values escaped for a JSON string; a missing atom or header is ``-``."""

    def __init__(self, atoms: dict[str, object]) -> None:
        super().__init__()
        for key, value in atoms.items():
            self[key] = json.dumps(value)[1:-1] if isinstance(value, str) else value

    def __getitem__(self, key: str) -> object:
        key = key.lower() if key.startswith("{") else key
        return super().__getitem__(key) if key in self else "-"


class ReceiverLogger(Logger):
    """Gunicorn's logger with JSON-safe access lines and without successful probe requests."""

    atoms_wrapper_class = _JsonAtoms

    def access(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        status = str(getattr(resp, "status", "") or "")
        if environ.get("PATH_INFO") in PROBE_PATHS and status.startswith("2"):
            return
        super().access(resp, req, environ, request_time)


logger_class = ReceiverLogger
