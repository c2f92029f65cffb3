"""Alembic environment: the engine comes from the caller or from the receiver's settings."""

from __future__ import annotations

from alembic import context

from receiver.settings import load_settings
from receiver.store.db import make_engine
from receiver.store.deadlines import extended
from receiver.store.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        settings = load_settings(require_auth=False)
        engine = make_engine(settings.database_url, settings.database)
    # a migration may take long (an index on a large table): no statement or lock timeout
    with engine.connect() as connection, extended(connection, None):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
