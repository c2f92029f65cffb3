"""Whether the database takes writes now (``/readyz``), and what went wrong, in words that
name no secret and no stored value."""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy import Engine

from receiver.store.db import WRITE_OPTIONS, is_sqlite, writer_turn
from receiver.store.deadlines import NoAnswer


def describe(exc: BaseException) -> str:
    """A short reason for a database error, fit for a log line or a readiness answer."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, NoAnswer):
        return str(orig)
    if isinstance(orig, psycopg.errors.QueryCanceled):
        return "statement timeout"
    if isinstance(orig, psycopg.errors.LockNotAvailable):
        return "lock timeout"
    if isinstance(orig, sqlite3.OperationalError):
        # SQLite's own messages ("database is locked", "attempt to write a readonly
        # database") and the writers' turn's name no value; "interrupted" is the deadline
        return "statement timeout" if str(orig) == "interrupted" else str(orig)
    return type(orig).__name__


def why_unwritable(engine: Engine) -> str | None:
    """Why a write would fail now, or None; raises SQLAlchemyError when the database fails
    to answer within its timeouts (or, SQLite, refuses the write).

    Postgres: a read-only session (a standby, ``default_transaction_read_only``). SQLite: the
    writers' turn (its lock file) and the write lock, with one header write rolled back (a
    connection SQLite opened read-only takes the lock but refuses the write).
    """
    if not is_sqlite(engine):
        with engine.connect() as conn:
            if conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on":
                return "database is read-only (a standby, or default_transaction_read_only)"
        return None
    with writer_turn(engine), engine.connect() as conn:
        conn = conn.execution_options(**WRITE_OPTIONS)
        transaction = conn.begin()  # BEGIN IMMEDIATE: the write lock
        try:
            version = int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
            conn.exec_driver_sql(f"PRAGMA user_version = {version}")
        finally:
            transaction.rollback()
    return None
