"""End-to-end stage: real Prometheus, two clustered Alertmanagers, gunicorn and the worker."""
