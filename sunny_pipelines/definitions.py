"""The `sunny_pipelines` code location: what each domain registers, merged, plus the shared
sensors built from the domains' registrations. Adding a domain is one line in `DOMAINS`."""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from sunny_pipelines import accounts, ai, calendar, drive, gmail, housekeeping, meetings
from sunny_pipelines.accounts.sensors import build_connected_users_sensor
from sunny_pipelines.inbox.jobs import replay_inbox
from sunny_pipelines.inbox.sensors import build_webhook_inbox_sensor
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


def platform_definitions(domains: Sequence[Domain]) -> dg.Definitions:
    """The inbox sensor, the users sensor and the replay job, for these domains."""
    jobs_by_source = {
        source: domain.inbox_job for domain in domains if domain.inbox_job for source in domain.inbox_sources
    }
    first_sync_jobs = [domain.first_sync_job for domain in domains if domain.first_sync_job]
    return dg.Definitions(
        jobs=[replay_inbox],
        sensors=[build_webhook_inbox_sensor(jobs_by_source), build_connected_users_sensor(first_sync_jobs)],
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
