"""The `sunny_pipelines` code location: what each domain registers, merged, plus the shared
sensors built from the domains' registrations. Adding a domain is one line in `DOMAINS`."""

import functools
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from sunny_pipelines import accounts, ai, calendar, drive, gmail, housekeeping, meetings
from sunny_pipelines.accounts.optimization import build_sync_optimization
from sunny_pipelines.accounts.sensors import build_connected_users_sensor
from sunny_pipelines.health import build_health
from sunny_pipelines.inbox.jobs import replay_inbox
from sunny_pipelines.inbox.sensors import build_webhook_inbox_sensor
from sunny_pipelines.partitions import Job, users
from sunny_pipelines.per_user import Domain
from sunny_pipelines.resources import build_resources

DOMAINS: list[Domain] = [
    calendar.domain,
    drive.domain,
    gmail.domain,
    meetings.domain,
    ai.domain,
    accounts.domain,
    housekeeping.domain,
]


def sync_all_users_job(first_sync_jobs: Sequence[Job]) -> Job:
    """The old `sync_all_users()`: every service's first-sync assets in one job over `users`, so an
    operator syncs a user, a range or everyone (a backfill of all partitions) from the UI."""
    return dg.define_asset_job(
        "sync_all_users",
        selection=functools.reduce(operator.or_, (job.selection for job in first_sync_jobs)),
        partitions_def=users,
        executor_def=dg.in_process_executor,
        description="Full sync of every service for the selected users (launch a backfill of the "
        "`users` partitions: all of them, a range, or one user).",
    )


def platform_definitions(domains: Sequence[Domain]) -> dg.Definitions:
    """The inbox sensor, the users sensor, the replay job, `sync_all_users`, the sync
    optimization (tuning the domains' per-user syncs) and the health checks and `fleet_health`
    (covering them), for these domains."""
    jobs_by_source = {
        source: domain.inbox_job for domain in domains if domain.inbox_job for source in domain.inbox_sources
    }
    first_sync_jobs = [domain.first_sync_job for domain in domains if domain.first_sync_job]
    return dg.Definitions.merge(
        dg.Definitions(
            jobs=[replay_inbox, *([sync_all_users_job(first_sync_jobs)] if first_sync_jobs else [])],
            sensors=[
                build_webhook_inbox_sensor(jobs_by_source),
                build_connected_users_sensor(first_sync_jobs),
            ],
        ),
        build_sync_optimization([domain.sync for domain in domains if domain.sync]),
        build_health(domains),
    )


def build_defs(
    resources: Mapping[str, Any] | None = None, domains: Sequence[Domain] = DOMAINS
) -> dg.Definitions:
    """The code location; tests pass resources bound to their own database and sandbox."""
    return dg.Definitions.merge(
        *(domain.definitions for domain in domains),
        platform_definitions(domains),
        dg.Definitions(resources=dict(resources) if resources is not None else build_resources()),
    )


defs = build_defs()
