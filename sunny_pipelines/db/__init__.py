"""The database: models (the frontend's contract), engine, migrations and set-based upserts."""

from sunny_pipelines.db.engine import get_engine
from sunny_pipelines.db.models import Base
from sunny_pipelines.db.upserts import upsert

__all__ = ["Base", "get_engine", "upsert"]
