"""The image's HEALTHCHECK (Docker, Compose; Kubernetes ignores it and uses its own probes).

The slim image has no curl, so Python asks. What is checked depends on what the container runs
(its process 1):

- the web (``gunicorn ... receiver.asgi:app`` or ``receiver serve``): ``GET /healthz`` on the
  receiver's ``listen.port`` (the address and port from the receiver's settings);
- ``receiver worker --metrics-port P [--metrics-address A]``: ``GET /metrics`` on port P of A
  (127.0.0.1 when A is every interface, ``0.0.0.0``, as in the worker pods, or not given);
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


def option(args: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args`` (the last one wins)."""
    found = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(name + "="):
            found = arg.split("=", 1)[1]
    return found


def url(host: str, port: int | str, path: str) -> str:
    """``http://host:port/path``, asking the loopback address for a wildcard host."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{path}"


def target(args: list[str]) -> str | None:
    """The URL to ask for a container running ``args``; None when there is nothing to ask."""
    if "worker" in args:
        port = option(args, "--metrics-port")
        if port is None:
            return None
        return url(option(args, "--metrics-address") or "127.0.0.1", port, "/metrics")
    if "receiver.asgi:app" in args or "receiver.wsgi:app" in args or "serve" in args:
        from receiver.settings import load_settings

        listen = load_settings(require_auth=False).listen
        return url(listen.host, listen.port, "/healthz")
    return None


def main(args: list[str] | None = None) -> int:
    try:
        asked = target(process_one_args() if args is None else args)
    except Exception as exc:  # e.g. an invalid configuration: the web cannot be running
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if asked is None:
        return 0
    try:
        with urllib.request.urlopen(asked, timeout=TIMEOUT_SECONDS) as answer:
            if 200 <= answer.status < 300:
                return 0
            print(f"unhealthy: {asked} answered {answer.status}", file=sys.stderr)
    except Exception as exc:  # any failure to get an answer is unhealthy
        print(f"unhealthy: {asked}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
