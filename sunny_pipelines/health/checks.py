"""The asset checks an operator trusts, built from what the domains register: `sync_freshness`
on every per-user sync asset, `push_channels_live` on every push channel asset, and
`inbox_pending_age` / `inbox_dead_letters` on `webhook_inbox` (the receiver's table, declared here
as an asset Sunny does not materialize). Each failure's description says what to do."""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from sunny_pipelines.health import reads
from sunny_pipelines.health.decisions import (
    ChannelReport,
    Freshness,
    InboxRowState,
    channel_report,
    freshness,
    lag_table,
    lags,
    markdown_table,
    reasons,
)
from sunny_pipelines.per_user import PushChannels, UserSync
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource

POOL = "sync"  # reads over the whole fleet (the old "sync" Celery queue), like sync optimization
GROUP = "operations"
WEBHOOK_INBOX = dg.AssetKey("webhook_inbox")
FRESHNESS_CHECK = "sync_freshness"
CHANNELS_CHECK = "push_channels_live"
PENDING_CHECK = "inbox_pending_age"
DEAD_LETTERS_CHECK = "inbox_dead_letters"

webhook_inbox = dg.AssetSpec(
    WEBHOOK_INBOX,
    group_name=GROUP,
    kinds={"sql"},
    description="Push notifications stored by the webhook receiver (`webhook_inbox`), answered by the "
    "runs `webhook_inbox_sensor` requests. Written by the receiver, not by Dagster: its checks watch "
    "the backlog and the dead letters.",
)


@dataclass(frozen=True)
class HealthSettings:
    """The checks' thresholds, from the environment (read at run time: a bad value fails the
    check's run with its reason, not the code location)."""

    max_stale_share: float = 0.05
    pending_max_age: timedelta = timedelta(minutes=5)
    dead_letter_window: timedelta = timedelta(hours=24)

    @classmethod
    def from_env(cls) -> "HealthSettings":
        share = float(os.environ.get("SUNNY_FRESHNESS_MAX_STALE_SHARE", "0.05"))
        if not 0 <= share <= 1:
            raise ValueError(f"SUNNY_FRESHNESS_MAX_STALE_SHARE must be within 0..1, not {share}")
        return cls(
            max_stale_share=share,
            pending_max_age=timedelta(
                minutes=float(os.environ.get("SUNNY_INBOX_PENDING_MAX_AGE_MINUTES", "5"))
            ),
            dead_letter_window=timedelta(
                hours=float(os.environ.get("SUNNY_INBOX_DEAD_LETTER_WINDOW_HOURS", "24"))
            ),
        )


def check_result(*, passed: bool, metadata: dict[str, Any], summary: str, action: str) -> dg.AssetCheckResult:
    """A check's result: the summary, and on failure (severity ERROR) what the operator should do."""
    if passed:
        return dg.AssetCheckResult(passed=True, metadata=metadata, description=summary)
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata, description=summary + action
    )


def freshness_result(result: Freshness, asset: dg.AssetKey) -> dg.AssetCheckResult:
    metadata = {
        "users": dg.MetadataValue.int(result.users),
        "stale_users": dg.MetadataValue.int(len(result.stale)),
        "stale_share": dg.MetadataValue.float(round(result.share, 4)),
        "max_stale_share": dg.MetadataValue.float(result.max_stale_share),
        "worst_users": dg.MetadataValue.md(lag_table(result.stale[:10]) if result.stale else "no stale user"),
    }
    summary = (
        f"{len(result.stale)} of {result.users} users with a usable grant ({result.share:.1%}) last synced "
        f"{result.service} more than twice their interval ago (allowed: {result.max_stale_share:.1%})."
    )
    action = (
        f" What to do: read the worst users' last_error (the table; sync_state.last_error), fix the cause "
        "(a grant, a quota, a failing run), then backfill those users from "
        f"Assets → {asset.to_user_string()} → Partitions "
        "(select them, Materialize selected); is the sync schedule running?"
    )
    return check_result(passed=result.passed, metadata=metadata, summary=summary, action=action)


def freshness_check(sync: UserSync, asset: dg.AssetKey) -> dg.AssetChecksDefinition:
    """`sync_freshness` on ``asset``: users whose last good ``sync`` is older than twice their
    interval, failing above `SUNNY_FRESHNESS_MAX_STALE_SHARE` of the users with a usable grant."""

    @dg.asset_check(
        asset=asset,
        name=FRESHNESS_CHECK,
        pool=POOL,
        description="Users with a usable grant whose last successful "
        f"{sync.service} sync is older than twice their interval: fails when their "
        "share exceeds SUNNY_FRESHNESS_MAX_STALE_SHARE (default 5%); the "
        "worst users are named.",
    )
    def sync_freshness(database: DatabaseResource) -> dg.AssetCheckResult:
        settings = HealthSettings.from_env()
        now = datetime.now(UTC)
        with database.begin() as conn:
            records = reads.sync_records(conn, {sync.service: sync.default_interval_seconds})
        return freshness_result(freshness(sync.service, lags(records, now), settings.max_stale_share), asset)

    return sync_freshness


def channels_result(push: PushChannels, report: ChannelReport) -> dg.AssetCheckResult:
    missing_rows = [
        (user, ", ".join(kinds)) for user, kinds in sorted(report.missing.items())[: reads.ROWS_NAMED]
    ]
    overdue_rows = [
        (c.user_id, c.kind, c.expires_at.isoformat() if c.expires_at else "") for c in report.overdue
    ]
    metadata = {
        "synced_users": dg.MetadataValue.int(report.users),
        "users_without_live_channel": dg.MetadataValue.int(len(report.missing)),
        "channels_in_renewal_margin": dg.MetadataValue.int(len(report.expiring)),
        "channels_overdue": dg.MetadataValue.int(len(report.overdue)),
        "renewal_margin_hours": dg.MetadataValue.float(push.renew_within.total_seconds() / 3600),
        "users_without_live_channel_table": dg.MetadataValue.md(
            markdown_table(["user", "kinds without a live channel"], missing_rows) if missing_rows else "none"
        ),
        "channels_overdue_table": dg.MetadataValue.md(
            markdown_table(["user", "kind", "expires at"], overdue_rows[: reads.ROWS_NAMED])
            if overdue_rows
            else "none"
        ),
    }
    summary = (
        f"{len(report.missing)} of {report.users} synced {push.service} users have no live push channel; "
        f"{len(report.expiring)} channels are within the {push.renew_within} renewal margin, "
        f"{len(report.overdue)} of them should already have been renewed."
    )
    action = (
        f" What to do: look at the latest runs of {push.asset.to_user_string()} (their channels_error and "
        "failed_users), check that the receiver's public URL (SUNNY_WEBHOOK_BASE_URL) or Pub/Sub topic is "
        f"reachable, then backfill the named users from Assets → {push.asset.to_user_string()} → Partitions; "
        "is its renewal schedule running?"
    )
    return check_result(passed=report.passed, metadata=metadata, summary=summary, action=action)


def channels_check(push: PushChannels) -> dg.AssetChecksDefinition:
    """`push_channels_live` on the domain's channel asset."""

    @dg.asset_check(
        asset=push.asset,
        name=CHANNELS_CHECK,
        pool=POOL,
        description=f"Every synced {push.service} user holds a live push channel of each kind "
        f"({', '.join(push.kinds)}), and no channel is left in its renewal margin past the next renewal.",
    )
    def push_channels_live(database: DatabaseResource, google: GoogleResource) -> dg.AssetCheckResult:
        if not push.enabled(google):
            return dg.AssetCheckResult(
                passed=True,
                metadata={"push": dg.MetadataValue.text("off")},
                description=f"Push is not configured for {push.service}: nothing to check.",
            )
        now = datetime.now(UTC)
        with database.begin() as conn:
            synced = reads.synced_users(conn, push.service)
            channels = reads.active_channels(conn, push.kinds)
        report = channel_report(synced, channels, push.kinds, now, push.renew_within, push.renewal_every)
        return channels_result(push, report)

    return push_channels_live


def _rows_table(rows: Sequence[InboxRowState], now: datetime) -> str:
    return markdown_table(
        ["id", "source", "user", "received", "attempts", "error"],
        [
            (
                row.id,
                row.source,
                row.user_id or "",
                f"{(now - row.received_at).total_seconds() / 60:.0f} min ago",
                row.attempts,
                (row.error or "")[:120],
            )
            for row in rows
        ],
    )


def pending_result(
    count: int, rows: Sequence[InboxRowState], max_age: timedelta, now: datetime
) -> dg.AssetCheckResult:
    metadata = {
        "old_pending_rows": dg.MetadataValue.int(count),
        "max_age_minutes": dg.MetadataValue.float(max_age.total_seconds() / 60),
        "oldest_rows": dg.MetadataValue.md(_rows_table(rows, now) if rows else "none"),
    }
    summary = f"{count} pending inbox rows were received more than {max_age} ago."
    action = (
        " What to do: check that webhook_inbox_sensor is running (Automation) and that the runs it "
        "requests (tag sunny/trigger=inbox) succeed; a run queued behind a pool limit shows in Runs → Queued."
    )
    return check_result(passed=not count, metadata=metadata, summary=summary, action=action)


def dead_letters_result(
    errors: Sequence[str | None], rows: Sequence[InboxRowState], window: timedelta, now: datetime
) -> dg.AssetCheckResult:
    by_reason = reasons(errors)
    metadata = {
        "dead_letters": dg.MetadataValue.int(len(errors)),
        "window_hours": dg.MetadataValue.float(window.total_seconds() / 3600),
        "by_reason": dg.MetadataValue.json(by_reason),
        "rows": dg.MetadataValue.md(_rows_table(rows, now) if rows else "none"),
    }
    summary = f"{len(errors)} inbox rows received in the last {window} used their last attempt and failed."
    action = (
        " Reasons: "
        + "; ".join(f"{reason}: {count}" for reason, count in list(by_reason.items())[:5])
        + ". What to do: fix the cause the reasons name, then replay them: Jobs → replay_inbox → Launchpad, "
        "with source / user_id / received_since in the op config; they go back to pending."
    )
    return check_result(passed=not errors, metadata=metadata, summary=summary, action=action)


@dg.asset_check(
    asset=WEBHOOK_INBOX,
    name=PENDING_CHECK,
    pool=POOL,
    description="No inbox row stays pending longer than SUNNY_INBOX_PENDING_MAX_AGE_MINUTES (default 5): "
    "push notifications are answered within minutes.",
)
def inbox_pending_age(database: DatabaseResource) -> dg.AssetCheckResult:
    settings = HealthSettings.from_env()
    now = datetime.now(UTC)
    with database.begin() as conn:
        count = reads.count_old_pending(conn, now - settings.pending_max_age)
        rows = reads.old_pending_rows(conn, now - settings.pending_max_age)
    return pending_result(count, rows, settings.pending_max_age, now)


@dg.asset_check(
    asset=WEBHOOK_INBOX,
    name=DEAD_LETTERS_CHECK,
    pool=POOL,
    description="No inbox row received within SUNNY_INBOX_DEAD_LETTER_WINDOW_HOURS (default 24) ended "
    "failed with its attempts used up; the failures are counted by reason.",
)
def inbox_dead_letters(database: DatabaseResource) -> dg.AssetCheckResult:
    settings = HealthSettings.from_env()
    now = datetime.now(UTC)
    with database.begin() as conn:
        errors = reads.dead_letter_errors(conn, now - settings.dead_letter_window)
        rows = reads.dead_letter_rows(conn, now - settings.dead_letter_window)
    return dead_letters_result(errors, rows, settings.dead_letter_window, now)
