"""Configuration: defaults, YAML, RECEIVER_* environment, *_file secrets, errors at once."""

import textwrap

import pytest

from receiver.settings import ConfigError, load_settings

TOKEN_A = "tok-A-9f8e7d6c5b4a"
TOKEN_B = "tok-B-0a1b2c3d4e5f"
PASSWORD = "pw-5ecr3t-basic-0123"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_errors(path=None, environ=None, **kwargs):
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {}, **kwargs)
    return caught.value


def test_the_defaults_apply_when_nothing_is_configured():
    settings = load_settings(environ={}, require_auth=False)
    assert settings.database_url == "sqlite:///var/receiver.db"
    assert (settings.listen.host, settings.listen.port, settings.listen.workers) == (
        "127.0.0.1",
        9099,
        2,
    )
    assert settings.log_level == "INFO"
    assert settings.public_url is None
    assert settings.auth.allow_unauthenticated is False
    assert settings.auth.bearer_tokens == []
    assert settings.auth.basic_auth is None
    assert settings.intake.max_body_bytes == 10 * 1024 * 1024
    assert (settings.flapping.threshold, settings.flapping.window_minutes) == (3, 30)
    assert settings.flapping.hold_down_minutes == 15
    assert settings.retention.incident_days is None  # incidents are kept unless asked
    assert (settings.retention.batch, settings.retention.passes_per_run) == (200, 25)


def test_incident_retention_is_set_in_yaml_or_the_environment_and_is_at_least_a_day(tmp_path):
    path = write(tmp_path, "receiver.yaml", "retention: {incident_days: 90, batch: 50}\n")
    settings = load_settings(path, environ={}, require_auth=False)
    assert (settings.retention.incident_days, settings.retention.batch) == (90, 50)
    environ = {"RECEIVER_RETENTION__INCIDENT_DAYS": "365"}
    assert load_settings(path, environ=environ, require_auth=False).retention.incident_days == 365
    error = config_errors(environ={"RECEIVER_RETENTION__INCIDENT_DAYS": "0.5"}, require_auth=False)
    assert [e.split(":")[0] for e in error.errors] == ["retention.incident_days"]


def test_values_from_the_yaml_file_replace_the_defaults(tmp_path):
    path = write(
        tmp_path,
        "receiver.yaml",
        """\
        database_url: postgresql://receiver@db:5432/receiver
        listen: {host: 0.0.0.0, port: 9100}
        log_level: debug
        flapping: {threshold: 5}
        auth: {allow_unauthenticated: true}
        """,
    )
    settings = load_settings(path, environ={})
    assert settings.database_url == "postgresql://receiver@db:5432/receiver"
    assert (settings.listen.host, settings.listen.port) == ("0.0.0.0", 9100)
    assert settings.listen.workers == 2  # untouched keys of a section keep their default
    assert settings.log_level == "DEBUG"
    assert settings.flapping.threshold == 5
    assert settings.flapping.window_minutes == 30


def test_environment_variables_override_the_yaml_file(tmp_path):
    path = write(
        tmp_path,
        "receiver.yaml",
        "database_url: sqlite:///from-yaml.db\nlisten: {host: 10.0.0.1, port: 9100}\n",
    )
    environ = {
        "RECEIVER_DATABASE_URL": "sqlite:///from-env.db",
        "RECEIVER_LISTEN__PORT": "9200",
        "RECEIVER_AUTH__ALLOW_UNAUTHENTICATED": "true",
        "OTHER_LISTEN__PORT": "1",
    }
    settings = load_settings(path, environ=environ)
    assert settings.database_url == "sqlite:///from-env.db"
    assert settings.listen.port == 9200
    assert settings.listen.host == "10.0.0.1"  # the sibling key from YAML survives the merge
    assert settings.auth.allow_unauthenticated is True


def test_the_config_path_can_come_from_receiver_config(tmp_path):
    path = write(tmp_path, "receiver.yaml", "log_level: WARNING\n")
    settings = load_settings(environ={"RECEIVER_CONFIG": str(path)}, require_auth=False)
    assert settings.log_level == "WARNING"


def test_an_empty_yaml_file_means_defaults(tmp_path):
    path = write(tmp_path, "receiver.yaml", "# nothing yet\n")
    assert load_settings(path, environ={}, require_auth=False).listen.port == 9099


def test_file_keys_in_yaml_read_secrets_from_files(tmp_path):
    tokens = write(tmp_path, "tokens", f"{TOKEN_A},{TOKEN_B}\n")
    password = write(tmp_path, "password", f"{PASSWORD}\n")
    path = write(
        tmp_path,
        "receiver.yaml",
        f"""\
        auth:
          bearer_tokens_file: {tokens}
          basic_auth:
            username: alertmanager
            password_file: {password}
        """,
    )
    auth = load_settings(path, environ={}).auth
    assert [t.get_secret_value() for t in auth.bearer_tokens] == [TOKEN_A, TOKEN_B]
    assert auth.basic_auth.username == "alertmanager"
    assert auth.basic_auth.password.get_secret_value() == PASSWORD


@pytest.mark.parametrize(
    "content",
    [
        f"{TOKEN_A}\n{TOKEN_B}\n",
        f"{TOKEN_A}, {TOKEN_B}",
        f"\n\n{TOKEN_A}\n\n  {TOKEN_B}  \n\n",
        f"{TOKEN_A},\n,{TOKEN_B},",
    ],
    ids=["newlines", "commas", "blank-lines", "mixed"],
)
def test_file_env_vars_read_bearer_tokens_split_on_commas_and_newlines(tmp_path, content):
    tokens = write(tmp_path, "tokens", content)
    settings = load_settings(environ={"RECEIVER_AUTH__BEARER_TOKENS_FILE": str(tokens)})
    assert [t.get_secret_value() for t in settings.auth.bearer_tokens] == [TOKEN_A, TOKEN_B]


def test_a_file_env_var_overrides_the_plain_yaml_value(tmp_path):
    tokens = write(tmp_path, "tokens", TOKEN_B)
    password = write(tmp_path, "password", PASSWORD)
    path = write(
        tmp_path,
        "receiver.yaml",
        f"auth:\n  bearer_tokens: [{TOKEN_A}]\n  basic_auth: {{username: u, password: old}}\n",
    )
    environ = {
        "RECEIVER_AUTH__BEARER_TOKENS_FILE": str(tokens),
        "RECEIVER_AUTH__BASIC_AUTH__PASSWORD_FILE": str(password),
    }
    auth = load_settings(path, environ=environ).auth
    assert [t.get_secret_value() for t in auth.bearer_tokens] == [TOKEN_B]
    assert auth.basic_auth.password.get_secret_value() == PASSWORD


def test_a_plain_env_value_splits_bearer_tokens_too():
    settings = load_settings(environ={"RECEIVER_AUTH__BEARER_TOKENS": f"{TOKEN_A}, {TOKEN_B}"})
    assert [t.get_secret_value() for t in settings.auth.bearer_tokens] == [TOKEN_A, TOKEN_B]


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("bogus: 1\n", "bogus: unknown setting"),
        ("listen: {prot: 1}\n", "listen.prot: unknown setting"),
        ("listen: {port: 70000}\n", "listen.port:"),
        ("listen: {port: http}\n", "listen.port:"),
        ("log_level: LOUD\n", "log_level:"),
        ("flapping: {threshold: 1}\n", "flapping.threshold:"),
        ("- a list\n", "top level must be a mapping"),
        ("listen: {port: [\n", "not valid YAML"),
    ],
)
def test_each_kind_of_error_is_reported_with_its_path(tmp_path, yaml_text, expected):
    path = write(tmp_path, "receiver.yaml", yaml_text)
    error = config_errors(path, require_auth=False)
    assert len(error.errors) == 1
    assert expected in error.errors[0]
    assert expected in str(error)


def test_unknown_keys_bad_values_and_bad_levels_are_all_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        "receiver.yaml",
        "bogus: 1\nlisten: {port: 70000, workers: 0}\nlog_level: LOUD\n",
    )
    error = config_errors(path, environ={"RECEIVER_INTAKE__REJECTED_KEEP": "-1"})
    # the missing webhook credentials are reported with the rest, not after they are fixed
    assert sorted(e.split(":")[0] for e in error.errors) == [
        "auth",
        "bogus",
        "intake.rejected_keep",
        "listen.port",
        "listen.workers",
        "log_level",
    ]


def test_invalid_yaml_and_unreadable_secret_files_are_reported_together(tmp_path):
    path = write(tmp_path, "receiver.yaml", "listen: {port: [\n")
    environ = {
        "RECEIVER_AUTH__BEARER_TOKENS_FILE": str(tmp_path / "missing-tokens"),
        "RECEIVER_AUTH__BASIC_AUTH__PASSWORD_FILE": str(tmp_path / "missing-password"),
    }
    error = config_errors(path, environ=environ)
    # the unreadable password is reported once (not again as missing); the username is missing
    assert len(error.errors) == 4
    assert "auth.basic_auth.username: Field required" in error.errors
    assert "not valid YAML" in error.errors[0]
    assert any("auth.bearer_tokens_file" in e and "missing-tokens" in e for e in error.errors)
    assert any("auth.basic_auth.password_file" in e for e in error.errors)


def test_a_missing_config_file_is_reported(tmp_path):
    error = config_errors(tmp_path / "nowhere.yaml", require_auth=False)
    assert "cannot read" in error.errors[0]
    assert "nowhere.yaml" in error.errors[0]


def test_an_unreadable_secret_file_is_reported_with_the_validation_errors(tmp_path):
    path = write(
        tmp_path,
        "receiver.yaml",
        f"bogus: 1\nlisten: {{port: 70000}}\nlog_level: LOUD\n"
        f"auth: {{bearer_tokens_file: {tmp_path / 'missing'}}}\n",
    )
    error = config_errors(path)
    assert sorted(e.split(":")[0] for e in error.errors) == [
        "auth.bearer_tokens_file",
        "bogus",
        "listen.port",
        "log_level",
    ]


def test_auth_is_required_when_no_credential_is_configured():
    error = config_errors()
    assert len(error.errors) == 1
    assert error.errors[0].startswith("auth:")
    assert "allow_unauthenticated" in error.errors[0]


@pytest.mark.parametrize(
    ("environ", "require_auth"),
    [
        ({"RECEIVER_AUTH__ALLOW_UNAUTHENTICATED": "true"}, True),
        ({}, False),
        ({"RECEIVER_AUTH__BEARER_TOKENS": TOKEN_A}, True),
        (
            {
                "RECEIVER_AUTH__BASIC_AUTH__USERNAME": "u",
                "RECEIVER_AUTH__BASIC_AUTH__PASSWORD": PASSWORD,
            },
            True,
        ),
    ],
    ids=["allow-unauthenticated", "require-auth-false", "bearer", "basic"],
)
def test_settings_without_auth_problems_load(environ, require_auth):
    load_settings(environ=environ, require_auth=require_auth)


def test_allow_unauthenticated_false_still_requires_credentials():
    error = config_errors(environ={"RECEIVER_AUTH__ALLOW_UNAUTHENTICATED": "false"})
    assert error.errors[0].startswith("auth:")


def test_secrets_never_appear_in_the_repr_of_settings(tmp_path):
    password = write(tmp_path, "password", PASSWORD)
    environ = {
        "RECEIVER_AUTH__BEARER_TOKENS": f"{TOKEN_A},{TOKEN_B}",
        "RECEIVER_AUTH__BASIC_AUTH__USERNAME": "alertmanager",
        "RECEIVER_AUTH__BASIC_AUTH__PASSWORD_FILE": str(password),
    }
    settings = load_settings(environ=environ)
    for text in (repr(settings), str(settings), repr(settings.auth), str(settings.model_dump())):
        for secret in (TOKEN_A, TOKEN_B, PASSWORD):
            assert secret not in text


def test_secrets_never_appear_in_validation_errors(tmp_path):
    password = write(tmp_path, "password", PASSWORD)
    path = write(
        tmp_path,
        "receiver.yaml",
        f"""\
        listen: {{port: 70000}}
        auth:
          bearer_token: {TOKEN_A}
          bearer_tokens: {{primary: {TOKEN_B}}}
          basic_auth: {{username: "", password_file: {password}}}
        """,
    )
    error = config_errors(path)
    assert len(error.errors) >= 4
    for secret in (TOKEN_A, TOKEN_B, PASSWORD):
        assert secret not in str(error)
        assert secret not in repr(error)


def test_secrets_never_appear_in_a_yaml_syntax_error(tmp_path):
    path = write(tmp_path, "receiver.yaml", f'auth:\n  bearer_tokens: ["{TOKEN_A}\n')
    error = config_errors(path)
    assert "not valid YAML" in str(error)
    assert TOKEN_A not in str(error)


def test_database_timeouts_have_defaults_for_large_webhooks_and_come_from_the_environment():
    """The URL stays at the top level; the bounds live in ``database`` (docs/operations.md)."""
    defaults = load_settings(environ={}, require_auth=False).database
    assert (defaults.statement_timeout_seconds, defaults.lock_timeout_seconds) == (5, 3)
    assert (defaults.connect_timeout_seconds, defaults.pool_timeout_seconds) == (5, 5)
    assert defaults.idle_in_transaction_timeout_seconds == 10
    environ = {
        "RECEIVER_DATABASE_URL": "postgresql://receiver@db/receiver",
        "RECEIVER_DATABASE__STATEMENT_TIMEOUT_SECONDS": "2.5",
        "RECEIVER_DATABASE__LOCK_TIMEOUT_SECONDS": "1",
    }
    settings = load_settings(environ=environ, require_auth=False)
    assert settings.database_url == "postgresql://receiver@db/receiver"
    assert settings.database.statement_timeout_seconds == 2.5
    assert settings.database.lock_timeout_seconds == 1


def test_database_timeouts_must_be_bounded():
    environ = {
        "RECEIVER_DATABASE__STATEMENT_TIMEOUT_SECONDS": "0",
        "RECEIVER_DATABASE__CONNECT_TIMEOUT_SECONDS": "1",
    }
    errors = str(config_errors(environ=environ, require_auth=False))
    assert "database.statement_timeout_seconds" in errors
    assert "database.connect_timeout_seconds" in errors
