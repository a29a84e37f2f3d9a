"""Accounts: users, their Google grants and sessions, and the `users` partitions (the users
sensor is built by the platform from every domain's first-sync job)."""

import dagster as dg

from sunny_pipelines.accounts.sessions import session_cleanup_job, session_cleanup_schedule
from sunny_pipelines.per_user import Domain

domain = Domain(
    name="accounts",
    definitions=dg.Definitions(jobs=[session_cleanup_job], schedules=[session_cleanup_schedule]),
    pool="auth",
)
