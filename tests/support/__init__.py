"""Helpers the tests share: clocks, webhook bodies, readers of the API, databases, benches,
real servers (gunicorn, Prometheus, Alertmanager), the two versions of Prometheus and
Alertmanager the tests run (versions.py) and the skip rule for missing components.

Fixtures stay in the ``conftest.py`` files; they build on these functions.
"""
