"""The production packaging, checked against the code: Dockerfile, .dockerignore, deploy/ and
docs/operations.md (``helpers`` reads them as Docker, gunicorn and Kubernetes would)."""
