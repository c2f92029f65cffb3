"""Gunicorn settings for the receiver's web processes in a container (the image, the web pods).

    gunicorn -c /app/deploy/gunicorn.conf.py receiver.asgi:app

This is the package's own gunicorn configuration, ``receiver/gunicorn_conf.py`` (the one
``receiver serve`` runs), extended for a pod. From the package, unchanged: logging through
``receiver.logs`` (one JSON object per line on stderr, gunicorn's own messages included), no
gunicorn access log (the application writes one access line per request itself, with its
request id and trace id: ``receiver/web/observe.py``), and ``child_exit``, which marks the metric
files of a worker process that exited as dead.

Added here:

- The address and the number of workers are the receiver's own settings (``listen.host``,
  ``listen.port``, ``listen.workers``: the YAML file named by ``RECEIVER_CONFIG``, overridden by
  ``RECEIVER_LISTEN__HOST`` and friends), so ``receiver serve`` and this file bind the same
  address. The image sets ``RECEIVER_LISTEN__HOST=0.0.0.0``. The log level and format
  (``log_level``, ``log_format``) apply to gunicorn's own messages as to the application's.
- Timeouts sized for a Kubernetes pod, the worker heartbeat in ``/dev/shm``, no control socket.
- ``PROMETHEUS_MULTIPROC_DIR``: with it, every worker process writes its counters there and
  ``GET /metrics`` adds them all up. The master creates the directory and empties it when it
  starts, so a restarted container never adds the counts of its previous run.

Anything can still be overridden for one run: ``GUNICORN_CMD_ARGS="--workers 4"`` or a
command-line option wins over this file.

Logs: probes and scrapes (``/healthz``, ``/readyz``, ``/metrics``) are logged at DEBUG by the
application, so at ``log_level: INFO`` they do not appear (failing ones neither, today: the
pod's readiness shows in Kubernetes' events and ``GET /readyz`` names the reason).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from gunicorn.config import KNOWN_SETTINGS

from receiver import gunicorn_conf as package
from receiver.metrics import MULTIPROC_ENV
from receiver.settings import ConfigError, load_settings

# Every gunicorn setting and hook the package defines, as it defines it (one source of truth);
# the assignments below add to it or, where they say so, override it.
globals().update(
    {s.name: getattr(package, s.name) for s in KNOWN_SETTINGS if hasattr(package, s.name)}
)

try:
    # Webhook credentials are the application's business (it refuses to start without them);
    # here only the listen section and the log settings are wanted.
    _settings = load_settings(require_auth=False)
except ConfigError as exc:
    raise SystemExit(f"gunicorn.conf.py: {exc}") from None

_listen = _settings.listen
_host = f"[{_listen.host}]" if ":" in _listen.host else _listen.host

bind = [f"{_host}:{_listen.port}"]
workers = _listen.workers
# requests are read by the event loop, then run in ``listen.threads`` threads (receiver/asgi.py):
# a slow or stalled client costs a socket, never a worker
worker_class = "asgi"

# The package's logging, at the configured level and in the configured format (the package
# reads RECEIVER_LOG_FORMAT only; this file reads every source of settings).
loglevel = _settings.log_level.lower()
logconfig_dict: dict[str, Any] = copy.deepcopy(package.logconfig_dict)
logconfig_dict["handlers"]["stderr"]["formatter"] = _settings.log_format
for _logger in (logconfig_dict["root"], *logconfig_dict["loggers"].values()):
    _logger["level"] = _settings.log_level
# Gunicorn writes its access log whenever a logconfig_dict is set, `accesslog = None` or not:
# silence its logger, the application's own access line (receiver.access) is the one kept.
logconfig_dict["loggers"]["gunicorn.access"] = {
    "level": "CRITICAL",
    "handlers": [],
    "propagate": False,
}

# A request that takes longer than this kills its worker (the database is then unreachable or
# locked; Alertmanager retries the webhook).
timeout = 30
# On SIGTERM (Kubernetes stops a pod) workers finish the requests they hold for up to this long.
# Overrides the package's 10 s: the pod's preStop pause (5 s) plus this stays below its
# terminationGracePeriodSeconds (30).
graceful_timeout = 20
# Requests on an idle kept-alive connection from a load balancer or ingress.
keepalive = 5

# Workers import the application themselves (no preload): every worker builds its own database
# engine and its own metric files, none is inherited across fork.
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


def on_starting(_server: Any) -> None:
    """In the master, before any worker: an existing, empty multiprocess metrics directory."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # prometheus_client's files of a previous run
        stale.unlink()
