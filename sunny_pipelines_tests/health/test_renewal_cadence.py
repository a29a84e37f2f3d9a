"""Each domain's `PushChannels.renewal_every` (what the push-channel check allows a channel to sit
inside its renewal margin) is the cadence of the schedule that renews that domain's channels."""

from datetime import UTC, datetime
from itertools import islice, pairwise

import pytest
from dagster._utils.schedules import cron_string_iterator

from sunny_pipelines.definitions import DOMAINS, defs


def longest_gap(cron: str):
    start = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # a Monday: a week of ticks from there
    ticks = list(islice(cron_string_iterator(start, cron, "UTC"), 2000))
    week = [t for t in ticks if (t.timestamp() - start) <= 7 * 86400]
    return max(b - a for a, b in pairwise(week))


@pytest.mark.parametrize("domain", [d for d in DOMAINS if d.push], ids=lambda d: d.name)
def test_renewal_every_is_the_renewal_schedules_cadence(domain):
    renewing = [
        schedule
        for schedule in domain.definitions.schedules
        if domain.push.asset in defs.resolve_job_def(schedule.job_name).asset_layer.executable_asset_keys
    ]
    assert renewing, f"{domain.name}: no schedule renews {domain.push.asset.to_user_string()}"
    assert min(longest_gap(s.cron_schedule) for s in renewing) == domain.push.renewal_every
