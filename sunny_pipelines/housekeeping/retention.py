"""Run retention: Dagster's `event_logs` grows with every run and has no retention of its own for
asset events (shared/DESIGN.md, Scale), so a daily job deletes runs older than a configurable age
with their events (`instance.delete_run`).

What the asset pages show must not change, so a run is kept while it holds, for some asset, the
latest materialization of a partition (or of an unpartitioned asset), or the latest attempt of a
partition that has not materialized since (a failed or running partition). Runs that are queued,
starting or running are never candidates; nor is a run whose status changed after the kept set was
read (it may hold a materialization newer than that read).
"""

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.storage.dagster_run import FINISHED_STATUSES
from dagster._core.storage.event_log import SqlEventLogStorage, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy import func, select

DEFAULT_MAX_AGE_DAYS = float(os.environ.get("SUNNY_DAGSTER_RUN_RETENTION_DAYS", "14"))
# Runs read (and deleted) per batch, so one pass never holds a large result or transaction.
BATCH_SIZE = 500
# Latest-materialization storage ids resolved to their runs per query.
STORAGE_IDS_PER_QUERY = 1_000


@dataclass(frozen=True)
class RetentionOutcome:
    runs_deleted: int
    runs_kept_latest: int  # old enough, but holding some partition's latest event
    event_log_rows_before: int | None  # None: the storage has no single table to count
    event_log_rows_after: int | None


def cutoff(now: datetime, max_age_days: float) -> datetime:
    """Runs created before this are old enough to delete."""
    if max_age_days < 0:
        raise ValueError(f"max_age_days must be 0 or more, not {max_age_days}")
    return now - timedelta(days=max_age_days)


def split_runs(run_ids: Sequence[str], keep: set[str]) -> tuple[list[str], list[str]]:
    """(runs to delete, runs kept), each in the order given."""
    return [r for r in run_ids if r not in keep], [r for r in run_ids if r in keep]


def _chunks(values: Iterable[int], size: int) -> Iterator[list[int]]:
    iterator = iter(values)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def unmaterialized_attempts(instance: dg.DagsterInstance, key: dg.AssetKey) -> Mapping[str, tuple[str, int]]:
    """Partition -> (run id, storage id) of its latest attempt, where none materialized since."""
    storage = instance.event_log_storage
    return storage.get_latest_asset_partition_materialization_attempts_without_materializations(key)


def runs_holding_latest_events(instance: dg.DagsterInstance) -> set[str]:
    """Every run holding the latest materialization of an asset or of one of its partitions, or
    the latest attempt of a partition that has not materialized since."""
    keys = list(instance.get_asset_keys())
    keep = {
        record.run_id
        for record in instance.get_latest_materialization_events(keys).values()
        if record is not None
    }
    for key in keys:
        latest = instance.get_latest_storage_id_by_partition(key, dg.DagsterEventType.ASSET_MATERIALIZATION)
        for chunk in _chunks(sorted(set(latest.values())), STORAGE_IDS_PER_QUERY):
            found = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, storage_ids=chunk), limit=len(chunk)
            )
            keep.update(record.run_id for record in found.records)
        # Failed or running partitions: their status comes from the run of that attempt.
        keep.update(run_id for run_id, _ in unmaterialized_attempts(instance, key).values())
    return keep


def event_log_rows(instance: dg.DagsterInstance) -> int | None:
    """Rows in the instance's event log table (PostgreSQL, consolidated SQLite); None for the
    default SQLite storage, which keeps one database file per run."""
    storage = instance.event_log_storage
    if isinstance(storage, SqliteEventLogStorage) or not isinstance(storage, SqlEventLogStorage):
        return None
    with storage.index_connection() as conn:
        return int(conn.execute(select(func.count()).select_from(SqlEventLogStorageTable)).scalar_one())


def delete_old_runs(
    instance: dg.DagsterInstance,
    created_before: datetime,
    *,
    batch_size: int = BATCH_SIZE,
    log: Callable[[str], None] = lambda message: None,
) -> RetentionOutcome:
    """Delete the finished runs created before ``created_before`` that hold no latest event."""
    read_at = datetime.now(UTC)
    keep = runs_holding_latest_events(instance)
    rows_before = event_log_rows(instance)
    filters = dg.RunsFilter(statuses=FINISHED_STATUSES, created_before=created_before, updated_before=read_at)
    deleted = kept = 0
    cursor: str | None = None  # the last kept run: kept runs stay, so the next page starts after it
    while True:
        records = instance.get_run_records(
            filters, limit=batch_size, order_by="id", ascending=True, cursor=cursor
        )
        doomed, spared = split_runs([record.dagster_run.run_id for record in records], keep)
        for run_id in doomed:
            instance.delete_run(run_id)
        deleted += len(doomed)
        kept += len(spared)
        if spared:
            cursor = spared[-1]
        if doomed or spared:
            log(f"deleted {deleted} runs so far, kept {kept} holding a latest materialization")
        if len(records) < batch_size:
            break
    return RetentionOutcome(deleted, kept, rows_before, event_log_rows(instance))
