"""Accounts: users, their Google grants and sessions, and the `users` partitions (the users
sensor is built by the platform from every domain's first-sync job): token refresh and
validation, revocation and offboarding, session cleanup."""

import dagster as dg

from sunny_pipelines.accounts.offboarding import revocation_job, revocation_schedule
from sunny_pipelines.accounts.sessions import session_cleanup_job, session_cleanup_schedule
from sunny_pipelines.accounts.tokens import (
    token_refresh_job,
    token_refresh_schedule,
    token_validation_job,
    token_validation_schedule,
)
from sunny_pipelines.per_user import Domain

domain = Domain(
    name="accounts",
    definitions=dg.Definitions(
        jobs=[session_cleanup_job, token_refresh_job, token_validation_job, revocation_job],
        schedules=[
            session_cleanup_schedule,
            token_refresh_schedule,
            token_validation_schedule,
            revocation_schedule,
        ],
    ),
    pool="auth",
)
