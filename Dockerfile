# One image for every process of the receiver (docs/operations.md):
#   docker build -t receiver .
#   web:      docker run ... -e PROMETHEUS_MULTIPROC_DIR=/tmp/metrics --entrypoint gunicorn
#               receiver -c /app/deploy/gunicorn.conf.py receiver.asgi:app
#   worker:   docker run ... receiver worker --metrics-port 9100 --metrics-address 0.0.0.0
#   schema:   docker run ... receiver db upgrade        (before the web and the worker start)
#   one node: docker run ... receiver                   (`receiver serve`: gunicorn + worker)
# Configuration comes at run time only: RECEIVER_CONFIG=/etc/receiver/receiver.yaml, RECEIVER_*
# variables, and secrets as files (*_FILE). Nothing secret is in the image.

# Any Debian-based Python 3.11 image whose `python3` has venv; the same in both stages.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
# The runtime dependencies first, at the versions of requirements.lock (used as a constraint, it
# installs only what pyproject.toml asks for at run time: never pytest, ruff or playwright, which
# the lock also pins for the tests). This layer is rebuilt only when one of the two files changes.
COPY pyproject.toml requirements.lock ./
RUN /opt/venv/bin/python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-c', 'requirements.lock', *deps])"
# Then the wheel of the package, built from pyproject.toml, README.md (its readme) and receiver/.
COPY README.md ./
COPY receiver ./receiver
RUN /opt/venv/bin/python -m pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/python -m pip install --no-deps /wheels/receiver-*.whl \
 && /opt/venv/bin/python -m pip check \
 && /opt/venv/bin/python -m pip uninstall --yes pip setuptools \
 && /opt/venv/bin/receiver --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="receiver" \
      org.opencontainers.image.description="Alertmanager webhook receiver and incident router" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 receiver \
 && useradd --system --uid 10001 --gid receiver --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin receiver
COPY --from=builder /opt/venv /opt/venv
# Migrations are not in the wheel: the image carries them and says where.
COPY migrations /app/migrations
# The runbook catalogue and the context queries shipped with the source, as defaults a
# configuration may name (runbooks_path: /app/config/runbooks.yaml); mount your own to change them.
COPY config/runbooks.yaml config/context.yaml config/slos.yaml /app/config/
COPY deploy/gunicorn.conf.py deploy/healthcheck.py /app/deploy/
# var/ holds the default SQLite database (single node only): mount a volume there to keep it.
RUN mkdir -p /app/var && chown receiver:receiver /app/var
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECEIVER_MIGRATIONS_DIR=/app/migrations \
    RECEIVER_LISTEN__HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
EXPOSE 9099
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
ENTRYPOINT ["receiver"]
CMD ["serve"]
