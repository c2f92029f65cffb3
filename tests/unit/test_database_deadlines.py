"""The server-side timeouts a Postgres connection starts with."""

from __future__ import annotations

from receiver.settings import DatabaseSettings
from receiver.store.deadlines import server_options


def test_timeouts_are_given_to_postgres_in_milliseconds() -> None:
    options = server_options(DatabaseSettings())
    assert options == (
        "-c statement_timeout=5000 -c lock_timeout=3000"
        " -c idle_in_transaction_session_timeout=10000"
    )


def test_a_timeout_below_a_millisecond_stays_a_limit_never_zero_which_is_none() -> None:
    tiny = DatabaseSettings(
        statement_timeout_seconds=0.0001,
        lock_timeout_seconds=0.0004,
        idle_in_transaction_timeout_seconds=0.0002,
    )
    assert server_options(tiny) == (
        "-c statement_timeout=1 -c lock_timeout=1 -c idle_in_transaction_session_timeout=1"
    )
