"""Batched per-user runs with per-partition truth (see "How runs work" in shared/DESIGN.md).

A run covers a range of `users` partitions. Users are worked on concurrently by a bounded
thread pool; each user that succeeded gets its own AssetMaterialization, and the run then
fails naming only the users that failed, so one bad grant never fails the others.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import dagster as dg

DEFAULT_MAX_WORKERS = int(os.environ.get("SUNNY_USER_CONCURRENCY", "8"))

# What a user's work returns: metadata for a materialization, or None when the user was skipped.
UserWork = Callable[[str], Mapping[str, Any] | None]


def for_each_user(
    context: dg.AssetExecutionContext,
    user_ids: list[str],
    work: UserWork,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> Iterator[dg.AssetMaterialization]:
    failures: dict[str, str] = {}
    skipped = 0
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(user_ids) or 1))) as pool:
        futures = {pool.submit(_timed, work, user_id): user_id for user_id in user_ids}
        for future in as_completed(futures):
            user_id = futures[future]
            try:
                metadata = future.result()
            except Exception as exc:  # one user's failure must not fail the others
                failures[user_id] = f"{type(exc).__name__}: {exc}"
                context.log.warning(
                    f"user {user_id} failed: {failures[user_id]}\n"
                    + "".join(traceback.format_exception(exc, limit=-3))
                )
                continue
            if metadata is None:
                skipped += 1
                continue
            yield dg.AssetMaterialization(
                asset_key=context.asset_key, partition=user_id, metadata=dict(metadata)
            )
    context.log.info(
        f"{len(user_ids) - skipped - len(failures)} users materialized, {skipped} skipped "
        f"(nothing to do), {len(failures)} failed in {time.monotonic() - started:.1f}s"
    )
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} of {len(user_ids)} users failed: "
            + "; ".join(f"{user}: {reason}" for user, reason in sorted(failures.items())),
            metadata={"failed_users": dg.MetadataValue.json(failures)},
            allow_retries=False,
        )


def _timed(work: UserWork, user_id: str) -> Mapping[str, Any] | None:
    started = time.monotonic()
    metadata = work(user_id)
    if metadata is None:
        return None
    return {**metadata, "duration_seconds": round(time.monotonic() - started, 3)}
