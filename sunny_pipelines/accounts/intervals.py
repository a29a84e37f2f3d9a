"""Sync optimization (the old `optimize_all_sync_intervals()`): each user's per-service sync
interval, computed from their recent sync history and the health of their push channels.

Plain functions over pandas frames; `accounts/optimization.py` reads the database and writes
the result. The formula, per (user, service), within the service's bounds ``[min, max]``:

1. **Change rate.** From the successful syncs in the history window, sorted by time:
   ``rate = changes / (last - first)``, where ``changes`` sums the change counts of every
   successful sync after the first (a sync finds the changes made since the previous one, so
   the first row's count belongs to time before the window) and leaves out full syncs
   (triggers `first_sync` and `backfill`: they list everything, not what changed). Push-driven
   and scheduled syncs both count: together they found every change of the period.
2. **Base interval.** With at least two successful syncs spanning at least an hour:
   ``base = TARGET_CHANGES / rate`` (the time in which the user makes ``TARGET_CHANGES``
   changes, default 5), or ``max`` when nothing changed. Below the service's default interval
   the reason is ``busy``, otherwise ``quiet``. With less history: the default, ``no_history``.
3. **Push.** A user with a live push channel for the service (active, not expired) hears of
   changes within seconds; the schedule is only the backstop: ``base = max(base,
   PUSH_BACKSTOP)`` (default 6 h), reason ``push_healthy``.
4. **Failures.** ``f`` failed syncs since the last success (the tail of the history):
   ``base = base * 2**f`` (f capped at 16), reason ``failing``. The due rule counts a failing
   sync's interval from its last failure (`db.sync_state.is_due`), so this is a real back-off.
5. **Bounds.** Rounded to whole minutes, then clamped to ``[min, max]`` (a busy user is never
   polled more often than ``min``, a quiet or failing one at least every ``max``).

The same history, channels and settings always give the same intervals.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sunny_pipelines.vocabulary import ChannelKind, ChannelStatus, Service, Trigger

if TYPE_CHECKING:
    # numpy and pandas are imported in the functions that use them: every run process imports
    # the code location, only the sync-optimization run computes intervals.
    import pandas as pd

# Which service a push channel announces changes of; the calendar list's channel only announces
# calendars added or removed, not event changes, so it does not make the calendar sync rare.
CHANNEL_SERVICES: dict[str, str] = {
    ChannelKind.CALENDAR_EVENTS: Service.CALENDAR,
    ChannelKind.DRIVE_CHANGES: Service.DRIVE,
    ChannelKind.GMAIL_MAILBOX: Service.GMAIL,
}
# Syncs that list everything rather than what changed: their counts are no change rate.
FULL_SYNC_TRIGGERS = frozenset({Trigger.FIRST_SYNC.value, Trigger.BACKFILL.value})
# Less observed time than this says too little about a user's rate.
MIN_OBSERVED_SECONDS = 3600
MAX_BACKOFF_DOUBLINGS = 16
ROUND_TO_SECONDS = 60

HISTORY_COLUMNS = ["user_id", "service", "finished_at", "change_count", "ok"]
RESULT_COLUMNS = ["user_id", "service", "interval_seconds", "reason"]


class Reason(StrEnum):
    """Which rule decided a (user, service)'s interval."""

    NO_HISTORY = "no_history"
    BUSY = "busy"
    QUIET = "quiet"
    PUSH_HEALTHY = "push_healthy"
    FAILING = "failing"


@dataclass(frozen=True)
class Bounds:
    min_seconds: int
    max_seconds: int

    def __post_init__(self) -> None:
        if not 0 < self.min_seconds <= self.max_seconds:
            raise ValueError(f"interval bounds must satisfy 0 < min <= max, got {self}")


@dataclass(frozen=True)
class ServicePolicy:
    """A tuned service: its domain's default interval and its bounds."""

    default_seconds: int
    bounds: Bounds


# The meetings domain's schedule ticks every 30 min, and a bot decision also depends on the
# user's recording rules, which no push announces: its intervals stay between 30 min and 6 h.
BUILTIN_SERVICE_BOUNDS: dict[str, Bounds] = {Service.ATTENDEE: Bounds(30 * 60, 6 * 3600)}


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


def _parse_service_bounds(name: str, raw: str) -> dict[str, Bounds]:
    """``calendar=300:86400,attendee=1800:21600`` → bounds per service."""
    found: dict[str, Bounds] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        service, _, span = item.partition("=")
        low, _, high = span.partition(":")
        try:
            found[service.strip()] = Bounds(int(low), int(high))
        except ValueError as exc:
            raise ValueError(f"{name}: {item!r} is not service=min:max in seconds ({exc})") from None
    return found


@dataclass(frozen=True)
class IntervalSettings:
    """The optimization's configuration (environment, with the defaults below)."""

    bounds: Bounds = Bounds(5 * 60, 24 * 3600)
    service_bounds: Mapping[str, Bounds] = field(default_factory=lambda: dict(BUILTIN_SERVICE_BOUNDS))
    target_changes_per_sync: int = 5
    push_backstop_seconds: int = 6 * 3600
    history_days: int = 14

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IntervalSettings:
        env = os.environ if env is None else env
        bounds = Bounds(
            _env_int(env, "SUNNY_SYNC_INTERVAL_MIN_SECONDS", 5 * 60),
            _env_int(env, "SUNNY_SYNC_INTERVAL_MAX_SECONDS", 24 * 3600),
        )
        name = "SUNNY_SYNC_INTERVAL_BOUNDS"
        return cls(
            bounds=bounds,
            service_bounds={**BUILTIN_SERVICE_BOUNDS, **_parse_service_bounds(name, env.get(name, ""))},
            target_changes_per_sync=_env_int(env, "SUNNY_SYNC_TARGET_CHANGES", 5),
            push_backstop_seconds=_env_int(env, "SUNNY_SYNC_PUSH_BACKSTOP_SECONDS", 6 * 3600),
            history_days=_env_int(env, "SUNNY_SYNC_HISTORY_DAYS", 14),
        )

    def policy(self, service: str, default_seconds: int) -> ServicePolicy:
        return ServicePolicy(default_seconds, self.service_bounds.get(service, self.bounds))


def push_health(channels: pd.DataFrame, now: datetime) -> set[tuple[str, str]]:
    """The (user, service) pairs with a live push channel: an active `watch_channels` row
    (columns user_id, service = its channel kind, status, expires_at) that expires after
    ``now``. A channel without an expiry is not trusted as live."""
    import pandas as pd

    if channels.empty:
        return set()
    expires = pd.to_datetime(channels["expires_at"], utc=True)
    live = channels[
        (channels["status"] == ChannelStatus.ACTIVE.value)
        & expires.notna()
        & (expires > pd.Timestamp(now))
        & channels["service"].isin(list(CHANNEL_SERVICES))
    ]
    return {
        (user_id, CHANNEL_SERVICES[kind])
        for user_id, kind in zip(live["user_id"], live["service"], strict=True)
    }


def _history_stats(history: pd.DataFrame) -> pd.DataFrame:
    """Per (user, service): successful syncs, observed seconds, changes counted, trailing failures."""
    import pandas as pd

    keys = ["user_id", "service"]
    history = history.sort_values([*keys, "finished_at"], kind="stable")
    ok = history[history["ok"]].copy()
    by_pair = ok.groupby(keys, sort=False)
    stats = pd.DataFrame(
        {
            "ok_syncs": by_pair.size(),
            "first_ok": by_pair["finished_at"].min(),
            "last_ok": by_pair["finished_at"].max(),
        }
    )
    ok["nth"] = by_pair.cumcount()
    trigger = ok["trigger"] if "trigger" in ok else pd.Series(None, index=ok.index, dtype=object)
    counted = ok[(ok["nth"] > 0) & ~trigger.isin(FULL_SYNC_TRIGGERS)]
    stats["changes"] = counted.groupby(keys)["change_count"].sum()
    stats["observed_seconds"] = (stats["last_ok"] - stats["first_ok"]).dt.total_seconds()
    # Failures after the pair's last success (all of them when it never succeeded).
    failures = history[~history["ok"]].merge(stats["last_ok"].reset_index(), on=keys, how="left")
    trailing = failures[failures["last_ok"].isna() | (failures["finished_at"] > failures["last_ok"])]
    stats = stats.drop(columns=["first_ok", "last_ok"]).join(
        trailing.groupby(keys).size().rename("failures"), how="outer"
    )
    return stats.fillna({"ok_syncs": 0, "changes": 0, "observed_seconds": 0.0, "failures": 0}).reset_index()


def compute_intervals(
    history: pd.DataFrame,
    pairs: pd.DataFrame,
    push_healthy: Iterable[tuple[str, str]],
    policies: Mapping[str, ServicePolicy],
    *,
    target_changes_per_sync: int = 5,
    push_backstop_seconds: int = 6 * 3600,
) -> pd.DataFrame:
    """Each (user, service) of ``pairs`` (columns user_id, service) whose service has a policy:
    its interval_seconds and the reason (see the module's formula).

    ``history``: sync history rows (user_id, service, finished_at, change_count, ok, and
    optionally trigger), any order; ``push_healthy``: the pairs with a live push channel
    (`push_health`)."""
    import numpy as np
    import pandas as pd

    pairs = pairs.loc[pairs["service"].isin(list(policies)), ["user_id", "service"]].drop_duplicates()
    if pairs.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype="int64" if c == "interval_seconds" else object) for c in RESULT_COLUMNS}
        )
    frame = pairs.reset_index(drop=True)
    if not history.empty:
        history = history.assign(
            finished_at=pd.to_datetime(history["finished_at"], utc=True),
            ok=history["ok"].astype(bool),
            change_count=history["change_count"].fillna(0).astype("int64"),
        )
        frame = frame.merge(_history_stats(history), on=["user_id", "service"], how="left")
    for column, empty in (("ok_syncs", 0), ("changes", 0), ("observed_seconds", 0.0), ("failures", 0)):
        frame[column] = frame[column].fillna(empty) if column in frame else empty
    default = frame["service"].map(lambda s: policies[s].default_seconds).astype(float)
    low = frame["service"].map(lambda s: policies[s].bounds.min_seconds).astype(float)
    high = frame["service"].map(lambda s: policies[s].bounds.max_seconds).astype(float)

    measured = (frame["ok_syncs"] >= 2) & (frame["observed_seconds"] >= MIN_OBSERVED_SECONDS)
    rate = np.where(measured, frame["changes"] / frame["observed_seconds"].where(measured, 1.0), 0.0)
    with np.errstate(divide="ignore"):
        from_rate = np.where(rate > 0, target_changes_per_sync / np.where(rate > 0, rate, 1.0), high)
    base = np.where(measured, from_rate, default)
    reason = np.where(
        measured, np.where(base < default, Reason.BUSY.value, Reason.QUIET.value), Reason.NO_HISTORY.value
    )

    healthy = set(push_healthy)
    push = np.array(
        [(u, s) in healthy for u, s in zip(frame["user_id"], frame["service"], strict=True)], dtype=bool
    )
    base = np.where(push, np.maximum(base, push_backstop_seconds), base)
    reason = np.where(push, Reason.PUSH_HEALTHY.value, reason)

    failures = frame["failures"].to_numpy(dtype=float)
    base = base * np.power(2.0, np.minimum(failures, MAX_BACKOFF_DOUBLINGS))
    reason = np.where(failures > 0, Reason.FAILING.value, reason)

    rounded = np.round(base / ROUND_TO_SECONDS) * ROUND_TO_SECONDS
    interval = np.clip(rounded, low.to_numpy(), high.to_numpy()).astype("int64")
    return pd.DataFrame(
        {
            "user_id": frame["user_id"],
            "service": frame["service"],
            "interval_seconds": interval,
            "reason": reason,
        }
    )


@dataclass(frozen=True)
class ServiceDistribution:
    """A service's intervals after an optimization: how many pairs, the quantiles (seconds) and
    how many pairs each reason decided."""

    count: int
    min: float
    p25: float
    median: float
    p75: float
    max: float
    reasons: dict[str, int]

    def quantiles(self) -> dict[str, float]:
        return {"min": self.min, "p25": self.p25, "median": self.median, "p75": self.p75, "max": self.max}


def distribution(result: pd.DataFrame) -> dict[str, ServiceDistribution]:
    """Per service (sorted), the distribution of ``compute_intervals``' result."""
    summary: dict[str, ServiceDistribution] = {}
    for service, rows in result.groupby("service", sort=True):
        seconds = rows["interval_seconds"].astype(float)
        summary[str(service)] = ServiceDistribution(
            count=len(rows),
            min=float(seconds.min()),
            p25=float(seconds.quantile(0.25)),
            median=float(seconds.median()),
            p75=float(seconds.quantile(0.75)),
            max=float(seconds.max()),
            reasons={str(k): int(v) for k, v in rows["reason"].value_counts().sort_index().items()},
        )
    return summary


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 60:.3g} min"


def distribution_markdown(summary: Mapping[str, ServiceDistribution]) -> str:
    """The distribution as a small markdown table, one line per service."""
    reasons = [r.value for r in Reason]
    lines = [
        "| service | users | min | p25 | median | p75 | max | " + " | ".join(reasons) + " |",
        "|" + " --- |" * (7 + len(reasons)),
    ]
    for service, stats in summary.items():
        cells = [service, str(stats.count)]
        cells += [_duration(value) for value in stats.quantiles().values()]
        cells += [str(stats.reasons.get(r, 0)) for r in reasons]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
