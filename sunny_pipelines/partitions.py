"""The `users` partitions (key = user id) and how batched runs name a range of them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import dagster as dg

from sunny_pipelines.vocabulary import Trigger

users = dg.DynamicPartitionsDefinition(name="users")

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Why a run was launched (a `vocabulary.Trigger`): it decides whom the run works on (see per_user.py).
TRIGGER_TAG = "sunny/trigger"

# A job that runs over `users` ranges: `dg.define_asset_job(...)` or `@dg.job` (sensors need its name).
Job = Any

# A run costs seconds to start, so users are batched, up to this many partitions per run.
MAX_USERS_PER_RUN = 50


def range_tags(start: str, end: str) -> dict[str, str]:
    return {RANGE_START_TAG: start, RANGE_END_TAG: end}


def plan_user_ranges(
    ordered_keys: Sequence[str], selected: Collection[str], max_users: int = MAX_USERS_PER_RUN
) -> list[tuple[str, str]]:
    """Cover the ``selected`` users with as few partition ranges as possible.

    A range is contiguous in partition order (the order users were added) and spans at most
    ``max_users`` partitions; it starts and ends on a selected user.
    """
    chosen = set(selected)
    ranges: list[tuple[str, str]] = []
    i = 0
    while i < len(ordered_keys):
        if ordered_keys[i] not in chosen:
            i += 1
            continue
        last = i
        for j in range(i, min(i + max_users, len(ordered_keys))):
            if ordered_keys[j] in chosen:
                last = j
        ranges.append((ordered_keys[i], ordered_keys[last]))
        i = last + 1
    return ranges


def range_run_requests(
    ordered_keys: Sequence[str],
    selected: Collection[str],
    *,
    run_key_prefix: str,
    trigger: Trigger,
    job_name: str | None = None,
    max_users: int = MAX_USERS_PER_RUN,
) -> list[dg.RunRequest]:
    """One batched run request per planned range of ``selected`` users."""
    requests = []
    for start, end in plan_user_ranges(ordered_keys, selected, max_users):
        tags = {**range_tags(start, end), TRIGGER_TAG: trigger.value}
        requests.append(
            dg.RunRequest(run_key=f"{run_key_prefix}:{start}..{end}", tags=tags, job_name=job_name)
        )
    return requests
