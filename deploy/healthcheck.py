"""The image's HEALTHCHECK (Docker, Compose; Kubernetes ignores it and uses its own probes).

The slim image has no curl, so Python asks. What is checked depends on what the container runs
(its process 1):

- the web (``gunicorn ... receiver.wsgi:app`` or ``receiver serve``): ``GET /healthz`` on the
  receiver's ``listen.port`` (the address and port from the receiver's settings);
- ``receiver worker --metrics-port P``: ``GET /metrics`` on 127.0.0.1:P;
- ``receiver worker`` without a metrics port, or a one-off command (``db upgrade``): nothing to
  ask, healthy while it runs.

Exit 0 when healthy, 1 otherwise, with the reason on stderr.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

TIMEOUT_SECONDS = 4.0


def process_one_args(proc: Path = Path("/proc/1/cmdline")) -> list[str]:
    try:
        return [a for a in proc.read_bytes().decode("utf-8", "replace").split("\0") if a]
    except OSError:
        return []


def target(args: list[str]) -> str | None:
    """The URL to ask for a container running ``args``; None when there is nothing to ask."""
    if "worker" in args:
        for i, arg in enumerate(args):
            if arg == "--metrics-port" and i + 1 < len(args):
                return f"http://127.0.0.1:{args[i + 1]}/metrics"
            if arg.startswith("--metrics-port="):
                return f"http://127.0.0.1:{arg.split('=', 1)[1]}/metrics"
        return None
    if "receiver.wsgi:app" in args or "serve" in args:
        from receiver.settings import load_settings

        listen = load_settings(require_auth=False).listen
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen.host, listen.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{listen.port}/healthz"
    return None


def main(args: list[str] | None = None) -> int:
    try:
        url = target(process_one_args() if args is None else args)
    except Exception as exc:  # e.g. an invalid configuration: the web cannot be running
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            if 200 <= answer.status < 300:
                return 0
            print(f"unhealthy: {url} answered {answer.status}", file=sys.stderr)
    except Exception as exc:  # any failure to get an answer is unhealthy
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
