"""`fleet_health`: what an operator would otherwise query by hand, as numbers the Dagster UI
plots over time (Assets → fleet_health → Events) and a table of the worst users."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from sunny_pipelines.health import reads
from sunny_pipelines.health.checks import GROUP, POOL
from sunny_pipelines.health.decisions import Lag, lag_summary, lag_table, lags, reasons, worst
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import GrantStatus, InboxStatus, UserStatus

# Every state gets a number, zero included, so that each plot is continuous.
USER_STATES = (
    *(status.value for status in GrantStatus),
    "no_grant",
    *(status.value for status in UserStatus if status != UserStatus.ACTIVE),
)


def fleet_metadata(
    fleet_lags: list[Lag],
    services: list[str],
    user_states: Mapping[str, int],
    inbox: Mapping[str, int],
    inbox_done_last_hour: int,
    oldest_pending_seconds: float,
    syncs_ok_last_hour: int,
    sync_errors_last_hour: list[str | None],
    runs_last_hour: int,
    runs_failed_last_hour: int,
) -> dict[str, Any]:
    """The asset's metadata from what was read (a plain function: tested on data)."""
    metadata: dict[str, Any] = {}
    for service in services:
        service_lags = [lag for lag in fleet_lags if lag.service == service]
        for name, seconds in lag_summary(service_lags).items():
            metadata[f"{service}_lag_{name}_seconds"] = dg.MetadataValue.float(seconds)
        metadata[f"{service}_users"] = dg.MetadataValue.int(len(service_lags))
        metadata[f"{service}_stale_users"] = dg.MetadataValue.int(sum(lag.stale for lag in service_lags))
        metadata[f"{service}_failing_users"] = dg.MetadataValue.int(
            sum(lag.consecutive_failures > 0 for lag in service_lags)
        )
    for state in sorted({*USER_STATES, *user_states}):
        metadata[f"users_{state}"] = dg.MetadataValue.int(int(user_states.get(state, 0)))
    metadata["inbox_pending"] = dg.MetadataValue.int(inbox.get(InboxStatus.PENDING.value, 0))
    metadata["inbox_failed"] = dg.MetadataValue.int(inbox.get(InboxStatus.FAILED.value, 0))
    metadata["inbox_done_last_hour"] = dg.MetadataValue.int(inbox_done_last_hour)
    metadata["inbox_oldest_pending_seconds"] = dg.MetadataValue.float(round(oldest_pending_seconds, 1))
    metadata["syncs_ok_last_hour"] = dg.MetadataValue.int(syncs_ok_last_hour)
    metadata["syncs_failed_last_hour"] = dg.MetadataValue.int(len(sync_errors_last_hour))
    metadata["sync_failures_by_reason_last_hour"] = dg.MetadataValue.json(reasons(sync_errors_last_hour))
    failing = [lag for lag in fleet_lags if lag.consecutive_failures > 0]
    metadata["failing_users_by_reason"] = dg.MetadataValue.json(reasons(lag.last_error for lag in failing))
    metadata["runs_last_hour"] = dg.MetadataValue.int(runs_last_hour)
    metadata["runs_failed_last_hour"] = dg.MetadataValue.int(runs_failed_last_hour)
    behind = worst(lag for lag in fleet_lags if lag.stale or lag.consecutive_failures > 0)
    metadata["worst_users"] = dg.MetadataValue.md(
        lag_table(behind) if behind else "every user is within cadence"
    )
    return metadata


def build_fleet_health(default_intervals: Mapping[str, int]) -> dg.AssetsDefinition:
    """The asset over the per-user syncs the domains register (service → default interval)."""
    services = sorted(default_intervals)

    @dg.asset(
        name="fleet_health",
        group_name=GROUP,
        pool=POOL,
        kinds={"sql"},
        description="The fleet at a glance, refreshed every 5 minutes: per service the sync lag "
        "(p50 / p95 / max seconds since each user's last good sync) and the stale and failing users; "
        "failures by reason; "
        "the inbox backlog and throughput; runs per hour; users per state; the worst users. The Events tab "
        "lists every refresh with its numbers. Services: " + ", ".join(services) + ".",
    )
    def fleet_health(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
        now = datetime.now(UTC)
        hour_ago = reads.hour_before(now)
        with database.begin() as conn:
            fleet_lags = lags(reads.sync_records(conn, default_intervals), now)
            user_states = reads.users_per_state(conn)
            inbox = reads.inbox_counts(conn)
            done = reads.inbox_done_since(conn, hour_ago)
            oldest = reads.oldest_pending_received_at(conn)
            ok, errors = reads.sync_outcomes_since(conn, hour_ago)
        runs = context.instance.get_runs_count(dg.RunsFilter(created_after=hour_ago))
        failed_runs = context.instance.get_runs_count(
            dg.RunsFilter(created_after=hour_ago, statuses=[dg.DagsterRunStatus.FAILURE])
        )
        metadata = fleet_metadata(
            fleet_lags,
            services,
            user_states,
            inbox,
            done,
            (now - oldest).total_seconds() if oldest else 0.0,
            ok,
            errors,
            runs,
            failed_runs,
        )
        stale = sum(lag.stale for lag in fleet_lags)
        context.log.info(
            f"{stale} of {len(fleet_lags)} (user, service) pairs are stale; {runs} runs in the last hour"
        )
        return dg.MaterializeResult(metadata=metadata)

    return fleet_health
