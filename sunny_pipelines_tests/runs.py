"""Running the code location as Dagster does, in tests: range runs of a job, and schedule and
sensor ticks evaluated as the daemon evaluates them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from sunny_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG, TRIGGER_TAG, range_tags
from sunny_pipelines.vocabulary import Trigger


def run_range(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job_name: str,
    keys: list[str],
    trigger: Trigger | None = None,
    **extra_tags: str,
) -> dg.ExecuteInProcessResult:
    """A batched run of ``job_name`` over the partition range ``keys[0]..keys[-1]``."""
    tags = {**range_tags(keys[0], keys[-1]), **extra_tags}
    if trigger is not None:
        tags[TRIGGER_TAG] = trigger.value
    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, tags=tags, raise_on_error=False
    )


def execute(
    defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """The run a sensor or schedule requested."""
    job = defs.resolve_job_def(request.job_name)
    return job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)


def evaluate_schedule(
    defs: dg.Definitions, name: str, instance: dg.DagsterInstance, resources: dict[str, Any]
):
    """A schedule tick as the daemon evaluates it."""
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime.now(UTC), resources=resources
    ) as context:
        return defs.get_schedule_def(name).evaluate_tick(context)


def evaluate_sensor(
    defs: dg.Definitions,
    name: str,
    instance: dg.DagsterInstance,
    resources: dict[str, Any],
    cursor: str | None = None,
):
    """A sensor tick as the daemon evaluates it."""
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(), definitions=defs, resources=resources, cursor=cursor
    ) as context:
        return defs.get_sensor_def(name).evaluate_tick(context)


def materialized(instance: dg.DagsterInstance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


def range_of(request: dg.RunRequest) -> tuple[str, str]:
    """The first and last `users` partition a batched run request covers."""
    return request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]


def partitions_materialized(result: dg.ExecuteInProcessResult) -> list[str]:
    """The `users` partitions a run materialized, in order."""
    return [
        e.materialization.partition
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    ]
