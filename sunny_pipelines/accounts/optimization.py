"""Sync optimization, daily 04:00 (the old `optimize_all_sync_intervals()`): the `sync_intervals`
asset prunes old `sync_history`, computes every tuned (user, service)'s interval from the recent
history and the live push channels (`accounts.intervals`), and writes the intervals that changed
to `sync_state.interval_seconds`, which the due-users schedules read.

The tuned services are the per-user syncs the domains register (`Domain.sync`), each with its
default interval: the code location builds these definitions from them (`definitions.py`), as
it builds the users sensor, so accounts imports no domain."""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg
from sqlalchemy import Connection, bindparam, delete, func, select, update

from sunny_pipelines.accounts.intervals import (
    HISTORY_COLUMNS,
    IntervalSettings,
    ServicePolicy,
    compute_intervals,
    distribution,
    distribution_markdown,
    push_health,
)
from sunny_pipelines.db.models import SyncHistory, SyncState, WatchChannel
from sunny_pipelines.per_user import UserSync
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import ChannelStatus

if TYPE_CHECKING:
    # pandas is imported where used: every run process imports the code location, only the
    # sync-optimization run needs it.
    import pandas as pd

# Users per read-compute-write transaction: bounds memory (their history) and lock time.
USER_BATCH_SIZE = 500
# History rows deleted per transaction.
PRUNE_BATCH_SIZE = 10_000
POOL = "sync"  # the old "sync" Celery queue


def prune_sync_history(
    database: DatabaseResource, before: datetime, batch_size: int = PRUNE_BATCH_SIZE
) -> int:
    """Delete history rows finished before ``before``, ``batch_size`` per transaction; how many."""
    deleted = 0
    while True:
        with database.begin() as conn:
            batch = select(SyncHistory.id).where(SyncHistory.finished_at < before).limit(batch_size)
            count = conn.execute(
                delete(SyncHistory).where(SyncHistory.id.in_(batch.scalar_subquery()))
            ).rowcount
        deleted += count
        if count < batch_size:
            return deleted


def _user_batches(database: DatabaseResource, services: list[str], batch_size: int) -> Iterator[list[str]]:
    """The users with a `sync_state` row of a tuned service, ``batch_size`` at a time (keyset)."""
    after = ""
    while True:
        with database.begin() as conn:
            batch = list(
                conn.execute(
                    select(SyncState.user_id)
                    .where(SyncState.service.in_(services), SyncState.user_id > after)
                    .group_by(SyncState.user_id)
                    .order_by(SyncState.user_id)
                    .limit(batch_size)
                ).scalars()
            )
        if not batch:
            return
        yield batch
        after = batch[-1]


@dataclass
class Optimization:
    """What a run did: every tuned pair's interval (with the previous one and the reason)."""

    intervals: "pd.DataFrame"  # user_id, service, interval_seconds, reason, previous_seconds
    history_rows_read: int
    history_rows_pruned: int

    @property
    def changed(self) -> int:
        return int((self.intervals["interval_seconds"] != self.intervals["previous_seconds"]).sum())


def optimize_sync_intervals(
    database: DatabaseResource,
    policies: Mapping[str, ServicePolicy],
    settings: IntervalSettings,
    now: datetime,
    *,
    user_batch_size: int = USER_BATCH_SIZE,
    prune_batch_size: int = PRUNE_BATCH_SIZE,
) -> Optimization:
    """Prune, then per batch of users: read their history and channels, compute, write the
    intervals that changed (one transaction per batch)."""
    import pandas as pd

    since = now - timedelta(days=settings.history_days)
    pruned = prune_sync_history(database, since, prune_batch_size)
    services = sorted(policies)
    frames: list[pd.DataFrame] = []
    read = 0
    for user_ids in _user_batches(database, services, user_batch_size):
        with database.begin() as conn:
            states = pd.DataFrame(
                conn.execute(
                    select(SyncState.user_id, SyncState.service, SyncState.interval_seconds).where(
                        SyncState.user_id.in_(user_ids), SyncState.service.in_(services)
                    )
                ).all(),
                columns=["user_id", "service", "previous_seconds"],
            )
            history = pd.DataFrame(
                conn.execute(
                    select(*(SyncHistory.__table__.c[c] for c in [*HISTORY_COLUMNS, "trigger"])).where(
                        SyncHistory.user_id.in_(user_ids),
                        SyncHistory.service.in_(services),
                        SyncHistory.finished_at >= since,
                    )
                ).all(),
                columns=[*HISTORY_COLUMNS, "trigger"],
            )
            channels = pd.DataFrame(
                conn.execute(
                    select(
                        WatchChannel.user_id,
                        WatchChannel.service,
                        WatchChannel.status,
                        WatchChannel.expires_at,
                    ).where(WatchChannel.user_id.in_(user_ids), WatchChannel.status == ChannelStatus.ACTIVE)
                ).all(),
                columns=["user_id", "service", "status", "expires_at"],
            )
            computed = compute_intervals(
                history,
                states[["user_id", "service"]],
                push_health(channels, now),
                policies,
                target_changes_per_sync=settings.target_changes_per_sync,
                push_backstop_seconds=settings.push_backstop_seconds,
            ).merge(states, on=["user_id", "service"])
            _write_changed(conn, computed)
        read += len(history)
        frames.append(computed)
    intervals = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["user_id", "service", "interval_seconds", "reason", "previous_seconds"])
    )
    return Optimization(intervals=intervals, history_rows_read=read, history_rows_pruned=pruned)


def _write_changed(conn: Connection, computed: "pd.DataFrame") -> None:
    changed = computed[computed["interval_seconds"] != computed["previous_seconds"]]
    if changed.empty:
        return
    table = SyncState.__table__
    conn.execute(
        update(table)
        .where(table.c.user_id == bindparam("b_user_id"), table.c.service == bindparam("b_service"))
        .values(interval_seconds=bindparam("b_interval"), updated_at=func.now()),
        [
            {"b_user_id": user_id, "b_service": service, "b_interval": int(interval)}
            for user_id, service, interval in changed[["user_id", "service", "interval_seconds"]].itertuples(
                index=False
            )
        ],
    )


def optimization_metadata(result: Optimization) -> dict[str, Any]:
    """The run's metadata: counts, and per service the interval distribution as numbers (so the
    UI plots them over time), counts by reason, and a markdown table of it all."""
    summary = distribution(result.intervals)
    metadata: dict[str, Any] = {
        "pairs": dg.MetadataValue.int(len(result.intervals)),
        "intervals_changed": dg.MetadataValue.int(result.changed),
        "history_rows_read": dg.MetadataValue.int(result.history_rows_read),
        "history_rows_pruned": dg.MetadataValue.int(result.history_rows_pruned),
        "distribution": dg.MetadataValue.md(distribution_markdown(summary)),
    }
    for service, stats in summary.items():
        metadata[f"{service}_count"] = dg.MetadataValue.int(stats.count)
        for name, seconds in stats.quantiles().items():
            metadata[f"{service}_{name}_seconds"] = dg.MetadataValue.float(seconds)
        metadata[f"{service}_reasons"] = dg.MetadataValue.json(stats.reasons)
    return metadata


def build_sync_optimization(syncs: Sequence[UserSync]) -> dg.Definitions:
    """The `sync_intervals` asset, its job and its daily 04:00 schedule, tuning ``syncs``."""
    defaults = {sync.service: sync.default_interval_seconds for sync in syncs}

    @dg.asset(
        name="sync_intervals",
        pool=POOL,
        group_name="accounts",
        kinds={"pandas", "sql"},
        description="Each user's per-service sync interval (`sync_state.interval_seconds`), from their "
        "sync history (changes per sync, failures) and push channel health, within the configured "
        "bounds; the metadata shows the distribution. Tuned services: " + ", ".join(sorted(defaults)) + ".",
    )
    def sync_intervals(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
        # Read at run time: a bad setting fails this run with its reason, not the code location.
        settings = IntervalSettings.from_env()
        policies = {service: settings.policy(service, default) for service, default in defaults.items()}
        result = optimize_sync_intervals(database, policies, settings, datetime.now(UTC))
        context.log.info(
            f"{result.changed} of {len(result.intervals)} intervals changed; "
            f"{result.history_rows_pruned} history rows older than {settings.history_days} days pruned"
        )
        return dg.MaterializeResult(metadata=optimization_metadata(result))

    job = dg.define_asset_job(
        "sync_optimization",
        selection=[sync_intervals],
        executor_def=dg.in_process_executor,
        description="Recompute every user's per-service sync interval.",
    )
    schedule = dg.ScheduleDefinition(
        name="sync_optimization_schedule",
        cron_schedule="0 4 * * *",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Sync optimization: recompute each user's per-service sync interval from their "
        "recent sync history and push channel health.",
    )
    return dg.Definitions(assets=[sync_intervals], jobs=[job], schedules=[schedule])
