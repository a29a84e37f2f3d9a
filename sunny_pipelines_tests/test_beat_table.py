"""Every entry of the old Celery beat table has its Dagster schedule, running by default, at the
beat's cadence. The per-user syncs tick every 5 minutes over the users whose interval elapsed:
their beat cadence is the service's default interval (adapted daily by the sync optimization)."""

import dagster as dg
import pytest

from sunny_pipelines.definitions import DOMAINS, build_defs

# beat entry → (schedule, cron, default interval of the service it syncs, if per-user)
BEAT_TABLE = {
    "Email processing, every 5 min": ("email_processing_schedule", "*/5 * * * *", ("gmail", 300)),
    "Drive sync, every 15 min": ("drive_sync_schedule", "*/5 * * * *", ("drive", 900)),
    "Calendar sync, every 30 min": ("calendar_sync_schedule", "*/5 * * * *", ("calendar", 1800)),
    "Attendee polling, every 10 min": ("attendee_polling_schedule", "*/10 * * * *", None),
    "Calendar watch renewal, every 6 h": ("calendar_watch_renewal_schedule", "0 */6 * * *", None),
    "Calendar webhook renewal, every 6 h": ("calendar_webhook_renewal_schedule", "30 */6 * * *", None),
    "Drive watch cleanup, daily 01:00": ("drive_watch_cleanup_schedule", "0 1 * * *", None),
    "Gmail watch renewal, every 4 h": ("gmail_watch_renewal_schedule", "15 */4 * * *", None),
    "AI model updates, daily 02:00": ("model_catalogue_schedule", "0 2 * * *", None),
    "Sync optimization, daily 04:00": ("sync_optimization_schedule", "0 4 * * *", None),
    "Google token refresh, every 30 min": ("token_refresh_schedule", "*/30 * * * *", None),
    "Google token validation, daily 05:00": ("token_validation_schedule", "0 5 * * *", None),
    "Session cleanup, daily 06:00": ("session_cleanup_schedule", "0 6 * * *", None),
}


@pytest.fixture(scope="module")
def schedules() -> dict[str, dg.ScheduleDefinition]:
    return {schedule.name: schedule for schedule in build_defs(resources={}).schedules}


def test_the_beat_table_has_thirteen_entries():
    assert len(BEAT_TABLE) == 13


@pytest.mark.parametrize("entry", sorted(BEAT_TABLE))
def test_each_beat_entry_has_its_running_schedule(entry, schedules):
    name, cron, per_user = BEAT_TABLE[entry]
    schedule = schedules[name]
    assert schedule.cron_schedule == cron
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    if per_user:
        service, interval = per_user
        [sync] = [domain.sync for domain in DOMAINS if domain.sync and domain.sync.service == service]
        assert sync.default_interval_seconds == interval
