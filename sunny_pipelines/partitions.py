"""The `users` partitions (key = user id) and how batched runs name a range of them."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
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

# A run costs seconds to start (on Kubernetes, a pod), so users are batched, up to this many
# partitions per run: SUNNY_USERS_PER_RUN, read once at import by the code server and its runs.
USERS_PER_RUN_ENV = "SUNNY_USERS_PER_RUN"
DEFAULT_USERS_PER_RUN = 50
# Beyond this one run holds too many users' work (and one failure's blast radius) for one step.
USERS_PER_RUN_LIMIT = 1000


def users_per_run(env: Mapping[str, str]) -> int:
    """The batch size ``env`` sets (``SUNNY_USERS_PER_RUN``), or the default when unset or empty.

    A value that is not a whole number from 1 to ``USERS_PER_RUN_LIMIT`` is refused with the
    variable named, so a typo stops the code server at load instead of batching silently wrong.
    """
    raw = env.get(USERS_PER_RUN_ENV, "").strip()
    if not raw:
        return DEFAULT_USERS_PER_RUN
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{USERS_PER_RUN_ENV} must be a whole number of users, got {raw!r}") from None
    if not 1 <= value <= USERS_PER_RUN_LIMIT:
        raise ValueError(f"{USERS_PER_RUN_ENV} must be between 1 and {USERS_PER_RUN_LIMIT}, got {value}")
    return value


MAX_USERS_PER_RUN = users_per_run(os.environ)
# A tick asks for about this many runs of a job at most (the instance runs 8 at once): when more
# users are selected, each run spans more of them, up to USERS_PER_RUN_LIMIT. A run's start costs
# seconds of CPU (a process importing the code location), so at 10,000 users 50-user runs would
# be 200 runs per job per tick, more than two cores can start (bench_fleet.py).
RUNS_PER_TICK = 8


def range_tags(start: str, end: str) -> dict[str, str]:
    return {RANGE_START_TAG: start, RANGE_END_TAG: end}


def run_span(ordered_keys: Sequence[str], selected: Collection[str], max_users: int, max_runs: int) -> int:
    """Partitions a range may span: ``max_users``, or more when the partitions from the first to
    the last selected user would otherwise need more than ``max_runs`` ranges (at most
    ``USERS_PER_RUN_LIMIT``, and never fewer than ``max_users``)."""
    chosen = set(selected)
    positions = [i for i, key in enumerate(ordered_keys) if key in chosen]
    if not positions:
        return max_users
    spread = positions[-1] - positions[0] + 1
    return max(max_users, min(USERS_PER_RUN_LIMIT, -(-spread // max_runs)))


def plan_user_ranges(
    ordered_keys: Sequence[str],
    selected: Collection[str],
    max_users: int = MAX_USERS_PER_RUN,
    max_runs: int | None = None,
) -> list[tuple[str, str]]:
    """Cover the ``selected`` users with as few partition ranges as possible.

    A range is contiguous in partition order (the order users were added) and spans at most
    ``max_users`` partitions (more when ``max_runs`` is given: see `run_span`); it starts and
    ends on a selected user.
    """
    chosen = set(selected)
    if max_runs is not None:
        max_users = run_span(ordered_keys, chosen, max_users, max_runs)
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
    max_runs: int = RUNS_PER_TICK,
) -> list[dg.RunRequest]:
    """One batched run request per planned range of ``selected`` users (about ``max_runs`` at
    most: see `run_span`)."""
    requests = []
    for start, end in plan_user_ranges(ordered_keys, selected, max_users, max_runs):
        tags = {**range_tags(start, end), TRIGGER_TAG: trigger.value}
        requests.append(
            dg.RunRequest(run_key=f"{run_key_prefix}:{start}..{end}", tags=tags, job_name=job_name)
        )
    return requests
