"""Schema management with Alembic: upgrade, current/head revisions, drift check."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from receiver.store.tables import Base


def migrations_dir() -> Path:
    """``migrations/`` beside the package (a source checkout or an image that copies it)."""
    override = os.environ.get("RECEIVER_MIGRATIONS_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    return ScriptDirectory(str(migrations_dir())).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_known(revision: str) -> bool:
    """Whether this code's migrations contain ``revision`` (a newer release's are unknown)."""
    return revision in {s.revision for s in ScriptDirectory(str(migrations_dir())).walk_revisions()}


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def drift(engine: Engine) -> list[str]:
    """Differences between the models and the database schema (empty when in sync)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True}
        )
        return [repr(diff) for diff in compare_metadata(context, Base.metadata)]
