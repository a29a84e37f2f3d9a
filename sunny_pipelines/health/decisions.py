"""What the health checks and the fleet-health asset decide, as plain functions over data: which
users are stale, which inbox rows are stuck or dead, which channels are missing or overdue, and
the fleet's percentiles. No Dagster, no database: `reads.py` fetches, these decide."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# How many users a check's or the fleet's table names (the counts cover everyone).
WORST_USERS = 10
# A stale user is one whose last successful sync is older than this many intervals.
STALE_AFTER_INTERVALS = 2
# A channel is overdue once it has been inside its renewal margin for a whole renewal period
# plus this (the renewal run itself takes a while).
RENEWAL_SLACK = timedelta(minutes=30)


@dataclass(frozen=True)
class SyncRecord:
    """One (user with a usable grant, service): what `sync_state` says, and since when the user
    could have been synced (the grant's creation: a user never synced is stale from there)."""

    user_id: str
    service: str
    interval_seconds: int
    last_synced_at: datetime | None
    connected_at: datetime
    consecutive_failures: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class Lag:
    """How long ago a (user, service) last synced well, against its interval."""

    user_id: str
    service: str
    lag_seconds: float
    interval_seconds: int
    never_synced: bool
    consecutive_failures: int
    last_error: str | None

    @property
    def intervals_behind(self) -> float:
        return self.lag_seconds / max(self.interval_seconds, 1)

    @property
    def stale(self) -> bool:
        return self.intervals_behind > STALE_AFTER_INTERVALS


def lags(records: Iterable[SyncRecord], now: datetime) -> list[Lag]:
    """Each record's lag: since its last success, or since the grant for a user never synced."""
    return [
        Lag(
            user_id=r.user_id,
            service=r.service,
            lag_seconds=max((now - (r.last_synced_at or r.connected_at)).total_seconds(), 0.0),
            interval_seconds=r.interval_seconds,
            never_synced=r.last_synced_at is None,
            consecutive_failures=r.consecutive_failures,
            last_error=r.last_error,
        )
        for r in records
    ]


def worst(found: Iterable[Lag], limit: int = WORST_USERS) -> list[Lag]:
    """The most intervals behind first (ties: the longest lag, then the user id)."""
    return sorted(found, key=lambda lag: (-lag.intervals_behind, -lag.lag_seconds, lag.user_id))[:limit]


@dataclass(frozen=True)
class Freshness:
    service: str
    users: int
    stale: list[Lag]
    max_stale_share: float

    @property
    def share(self) -> float:
        return len(self.stale) / self.users if self.users else 0.0

    @property
    def passed(self) -> bool:
        return self.share <= self.max_stale_share


def freshness(service: str, service_lags: Sequence[Lag], max_stale_share: float) -> Freshness:
    """The stale users of one service; failing when their share exceeds ``max_stale_share``."""
    return Freshness(
        service=service,
        users=len(service_lags),
        stale=worst([lag for lag in service_lags if lag.stale], limit=len(service_lags)),
        max_stale_share=max_stale_share,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` (0..1) percentile by linear interpolation between the closest ranks; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def lag_summary(service_lags: Sequence[Lag]) -> dict[str, float]:
    """p50 / p95 / max seconds since the last successful sync."""
    seconds = [lag.lag_seconds for lag in service_lags]
    return {
        "p50": round(percentile(seconds, 0.5), 1),
        "p95": round(percentile(seconds, 0.95), 1),
        "max": round(max(seconds, default=0.0), 1),
    }


def failure_reason(error: str | None) -> str:
    """A short, groupable reason for an error text: its exception name or first words (the rest
    names users, ids or times that would make every row its own group)."""
    if not error:
        return "unknown"
    head = error.strip().split(":", 1)[0].strip()
    return (head or "unknown")[:80]


def reasons(errors: Iterable[str | None]) -> dict[str, int]:
    """Counts by `failure_reason`, the most frequent first."""
    return dict(Counter(failure_reason(error) for error in errors).most_common())


@dataclass(frozen=True)
class InboxRowState:
    id: int
    source: str
    user_id: str | None
    status: str
    received_at: datetime
    attempts: int
    error: str | None


def stuck_pending(rows: Iterable[InboxRowState], now: datetime, max_age: timedelta) -> list[InboxRowState]:
    """Pending rows received longer than ``max_age`` ago, the oldest first."""
    old = [row for row in rows if row.status == "pending" and now - row.received_at > max_age]
    return sorted(old, key=lambda row: (row.received_at, row.id))


@dataclass(frozen=True)
class ChannelState:
    user_id: str
    kind: str
    expires_at: datetime | None  # of an active channel


@dataclass(frozen=True)
class ChannelReport:
    """Per push service: who lacks a live channel, which live channels are inside the renewal
    margin (normal until the next renewal), and which the renewal should already have replaced."""

    users: int
    missing: dict[str, list[str]]  # user -> kinds without a live channel
    expiring: list[ChannelState]
    overdue: list[ChannelState]

    @property
    def passed(self) -> bool:
        return not self.missing and not self.overdue


def channel_report(
    synced_users: Iterable[str],
    channels: Iterable[ChannelState],
    kinds: Sequence[str],
    now: datetime,
    renew_within: timedelta,
    renewal_every: timedelta,
) -> ChannelReport:
    """Every synced user must hold a live (active, unexpired) channel of each of ``kinds``."""
    users = sorted(set(synced_users))
    live = [c for c in channels if c.kind in kinds and (c.expires_at is None or c.expires_at > now)]
    held = {(c.user_id, c.kind) for c in live}
    missing = {
        user: [kind for kind in kinds if (user, kind) not in held]
        for user in users
        if any((user, kind) not in held for kind in kinds)
    }
    wanted = set(users)
    in_margin = sorted(
        (
            c
            for c in live
            if c.user_id in wanted and c.expires_at is not None and c.expires_at <= now + renew_within
        ),
        key=lambda c: (c.expires_at, c.user_id, c.kind),
    )
    overdue_before = now + renew_within - renewal_every - RENEWAL_SLACK
    overdue = [c for c in in_margin if c.expires_at is not None and c.expires_at <= overdue_before]
    return ChannelReport(users=len(users), missing=missing, expiring=in_margin, overdue=overdue)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table (cells' pipes and newlines escaped)."""

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def lag_table(found: Iterable[Lag]) -> str:
    """The worst users as a markdown table: what an operator opens first."""
    return markdown_table(
        ["user", "service", "last good sync", "interval", "failures", "last error"],
        [
            (
                lag.user_id,
                lag.service,
                "never" if lag.never_synced else f"{duration(lag.lag_seconds)} ago",
                duration(lag.interval_seconds),
                lag.consecutive_failures,
                (lag.last_error or "")[:120],
            )
            for lag in found
        ],
    )


def duration(seconds: float) -> str:
    """``seconds`` in the largest whole unit that reads well: 45s, 12m, 3.5h, 2.0d."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
