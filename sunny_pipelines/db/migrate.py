"""Running Alembic migrations from code, without an alembic.ini at the repository root."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from sunny_pipelines.db.engine import database_url_from_env, get_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", normalize_url(url or database_url_from_env()).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the database at ``url`` (default: SUNNY_DATABASE_URL, else local SQLite)."""
    get_engine(url)  # creates the SQLite folder if needed
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def revision(message: str, url: str | None = None) -> None:
    command.revision(alembic_config(url), message=message, autogenerate=True)
