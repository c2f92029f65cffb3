"""No secret anywhere in what is shipped: the Dockerfile, .dockerignore, deploy/ (manifests,
scripts) and docs/operations.md hold placeholders only; the example Secret is stringData with
REPLACE_ME values. The scanner is tested on made-up secrets first."""

from __future__ import annotations

from tests.packaging.helpers import (
    DEPLOY,
    DOCKERFILE,
    DOCKERIGNORE,
    OPERATIONS,
    PLACEHOLDER,
    example_secret,
    secrets_in,
)
from tests.support.servers import REPO_ROOT


def test_the_secret_scanner_finds_secrets() -> None:
    # made up here, in pieces, so that this file holds no secret-looking literal either
    samples = [
        "xoxb-" + "1234567890-abcdefghij",
        "-----BEGIN " + "RSA PRIVATE KEY-----",
        "AKIA" + "ABCDEFGHIJKLMNOP",
        "routing_key: " + "0123456789abcdef" * 2,
        "postgresql://receiver:" + "hunter2" + "@db:5432/receiver",
        "token: " + "Zq3" + "xV9mP2kL8wR4tY7uN1bC6dE",
        "admin: " + "scrypt:32768:8:1$" + "salt$hash",
    ]
    for sample in samples:
        assert secrets_in(sample), sample
    harmless = [
        "postgresql://receiver:REPLACE_ME@postgres:5432/receiver",
        "RECEIVER_RECEIVERS__PAGERDUTY_CRITICAL__ROUTING_KEY_FILE",
        "channel: C0123456789",
    ]
    for sample in harmless:
        assert not secrets_in(sample), sample


def test_nothing_shipped_holds_a_real_looking_secret() -> None:
    paths = [DOCKERFILE, DOCKERIGNORE, OPERATIONS, *sorted(DEPLOY.rglob("*.*"))]
    for path in paths:
        if path.suffix in (".pyc",) or "__pycache__" in path.parts:
            continue
        assert not secrets_in(path.read_text()), f"{path.relative_to(REPO_ROOT)}"
    secret = example_secret()
    assert "data" not in secret, "stringData only: base64 would hide what the values are"
    for key, value in secret["stringData"].items():
        assert PLACEHOLDER in value, f"{key}: a placeholder, never a value"
