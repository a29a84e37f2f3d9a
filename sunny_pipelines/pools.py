"""The old backend's seven Celery queues as Dagster concurrency pools, and each pool's limit.

This dict is the one place the limits live. `dagster.yaml` can only set a default for every pool
(`concurrency.pools.default_limit`); a pool's own limit is stored in the instance (its
event-log storage), which is what `dagster instance concurrency set <pool> <limit>` writes.
`python -m sunny_pipelines.pools apply` writes all of them at once: the quick start runs it, and
production runs it after each deploy (deploy/README.md). `python -m sunny_pipelines.pools show`
prints what the instance holds.

With `granularity: op`, a limit is how many steps of that pool run at once across all runs; a
step of a per-user asset is one batched run's work on up to `SUNNY_USERS_PER_RUN` (50) users
(each run also bounds its users, `SUNNY_USER_CONCURRENCY`, and its Google calls,
`SUNNY_GOOGLE_CONCURRENCY`).
"""

import argparse
import sys
from collections.abc import Mapping, Sequence

import dagster as dg

POOL_LIMITS: Mapping[str, int] = {
    # Gmail sync and email processing: the busiest beat entry (every 5 minutes).
    "email": 4,
    # Classification and summaries: bounded by the provider's rate limits and the token budget.
    "ai": 2,
    "drive": 4,
    "calendar": 4,
    # Attendee bots and transcripts: one Attendee account, whose API is rate limited.
    "attendee": 2,
    # Work over every user at once (housekeeping, inbox replay): one at a time.
    "sync": 1,
    # Grants and sessions: token refresh/validation hit Google's OAuth endpoints.
    "auth": 2,
}


class PoolsUnsupported(RuntimeError):
    """The instance's storage cannot hold per-pool limits."""


def apply_pool_limits(
    instance: dg.DagsterInstance, limits: Mapping[str, int] = POOL_LIMITS
) -> dict[str, int]:
    """Set every pool's limit on ``instance``; returns the limits the instance now holds for them."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        raise PoolsUnsupported(
            f"{type(storage).__name__} does not support pool limits; migrate the instance "
            "(`dagster instance migrate`) or use PostgreSQL storage"
        )
    for pool, limit in limits.items():
        storage.set_concurrency_slots(pool, limit)
    return pool_limits(instance, limits)


def pool_limits(instance: dg.DagsterInstance, pools: Sequence[str] | Mapping[str, int]) -> dict[str, int]:
    """The limit ``instance`` holds for each of ``pools`` that has one of its own."""
    held = {limit.name: limit.limit for limit in instance.event_log_storage.get_pool_limits()}
    return {pool: held[pool] for pool in pools if pool in held}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sunny_pipelines.pools",
        description="Per-pool concurrency limits of the Dagster instance in $DAGSTER_HOME.",
    )
    parser.add_argument("command", choices=["apply", "show"])
    args = parser.parse_args(argv)
    with dg.DagsterInstance.get() as instance:
        if args.command == "apply":
            try:
                held = apply_pool_limits(instance)
            except PoolsUnsupported as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        else:
            held = pool_limits(instance, POOL_LIMITS)
        default = instance.get_concurrency_config().pool_config.default_pool_limit
    for pool in POOL_LIMITS:
        print(f"{pool:<10} {held.get(pool, f'unset (default {default})')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
