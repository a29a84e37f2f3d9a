"""Housekeeping of the Dagster instance itself: old runs and their event log rows are deleted
daily (tick retention is `retention:` in dagster.yaml)."""

import dagster as dg

from sunny_pipelines.housekeeping.jobs import POOL, run_retention_job, run_retention_schedule
from sunny_pipelines.per_user import Domain

domain = Domain(
    name="housekeeping",
    definitions=dg.Definitions(jobs=[run_retention_job], schedules=[run_retention_schedule]),
    pool=POOL,
)
